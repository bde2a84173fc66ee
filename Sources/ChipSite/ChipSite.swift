// The site engine.
