// SwiftNIO edge for site-to-site channels.
