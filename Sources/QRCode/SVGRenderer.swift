extension QRCode {
    /// The default size of one module in SVG output, in CSS pixels
    /// (the `width` and `height` attributes; the drawing scales freely).
    public static let defaultSVGModuleSize = 8

    /// The symbol as a standalone SVG document: a white background and one
    /// black `<path>` covering exactly the dark modules, in a `viewBox` of
    /// one unit per module that includes a `quietZone` (clamped to 0...64) on
    /// every side. `moduleSize` (clamped to 1...64) sets `width` and `height`.
    public func svgString(
        moduleSize: Int = QRCode.defaultSVGModuleSize,
        quietZone: Int = QRCode.quietZoneModules
    ) -> String {
        let quietZone = min(max(quietZone, 0), SVG.maximumQuietZone)
        let moduleSize = min(max(moduleSize, 1), SVG.maximumModuleSize)
        let across = size + 2 * quietZone
        let pixels = across * moduleSize

        // Each horizontal run of dark modules becomes one rectangle.
        var path = ""
        for y in 0..<size {
            var x = 0
            while x < size {
                guard isDark(x: x, y: y) else { x += 1; continue }
                let start = x
                while x < size && isDark(x: x, y: y) { x += 1 }
                let run = x - start
                path += "M\(start + quietZone) \(y + quietZone)h\(run)v1h-\(run)z"
            }
        }
        return """
            <?xml version="1.0" encoding="UTF-8"?>
            <svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="\(pixels)" height="\(pixels)" \
            viewBox="0 0 \(across) \(across)" shape-rendering="crispEdges">
            <rect width="\(across)" height="\(across)" fill="#fff"/>
            <path fill="#000" d="\(path)"/>
            </svg>

            """
    }
}

/// Limits of the SVG renderer.
enum SVG {
    /// The widest quiet zone accepted, in modules.
    static let maximumQuietZone = 64
    /// The largest module size accepted, in CSS pixels.
    static let maximumModuleSize = 64
}
