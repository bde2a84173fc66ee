import CZlib

extension QRCode {
    /// The default size of one module in PNG output, in pixels.
    public static let defaultPNGModuleScale = 8

    /// The symbol as a PNG image: 1-bit greyscale, black modules on white,
    /// `quietZone` light modules on every side, each module `scale` × `scale`
    /// pixels (both clamped to sensible ranges: scale 1...64, quiet zone 0...64).
    ///
    /// The file is written by hand (PNG specification, ISO/IEC 15948): the
    /// signature, IHDR, one IDAT compressed with zlib, IEND, each chunk with
    /// its CRC-32.
    public func pngData(
        scale: Int = QRCode.defaultPNGModuleScale,
        quietZone: Int = QRCode.quietZoneModules
    ) -> [UInt8] {
        let scale = min(max(scale, 1), PNG.maximumScale)
        let quietZone = min(max(quietZone, 0), PNG.maximumQuietZone)
        let modulesAcross = size + 2 * quietZone
        let pixels = modulesAcross * scale
        let rowBytes = (pixels + 7) / 8

        // Scanlines: filter type 0 (None), then the pixels, 1 = white.
        var raw = [UInt8]()
        raw.reserveCapacity((rowBytes + 1) * pixels)
        var row = [UInt8](repeating: 0, count: rowBytes)
        for moduleY in 0..<modulesAcross {
            for index in row.indices { row[index] = 0 }
            for px in 0..<pixels {
                let isLight = !isDark(x: px / scale - quietZone, y: moduleY - quietZone)
                if isLight { row[px / 8] |= 0x80 >> UInt8(px % 8) }
            }
            for _ in 0..<scale {
                raw.append(PNG.filterTypeNone)
                raw.append(contentsOf: row)
            }
        }

        var header = [UInt8]()
        header.appendBigEndian(UInt32(pixels))
        header.appendBigEndian(UInt32(pixels))
        header += [
            PNG.bitDepth, PNG.colourTypeGreyscale, PNG.compressionMethodDeflate,
            PNG.filterMethodAdaptive, PNG.interlaceMethodNone
        ]

        var png = PNG.signature
        PNG.appendChunk("IHDR", header, to: &png)
        PNG.appendChunk("IDAT", PNG.zlibCompress(raw), to: &png)
        PNG.appendChunk("IEND", [], to: &png)
        return png
    }
}

/// Constants and helpers of the PNG format (ISO/IEC 15948).
enum PNG {
    /// The eight-byte PNG file signature.
    static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
    /// IHDR bit depth: one bit per pixel.
    static let bitDepth: UInt8 = 1
    /// IHDR colour type 0: greyscale.
    static let colourTypeGreyscale: UInt8 = 0
    /// IHDR compression method 0: zlib deflate.
    static let compressionMethodDeflate: UInt8 = 0
    /// IHDR filter method 0: the five adaptive filter types.
    static let filterMethodAdaptive: UInt8 = 0
    /// IHDR interlace method 0: none.
    static let interlaceMethodNone: UInt8 = 0
    /// Scanline filter type 0: None.
    static let filterTypeNone: UInt8 = 0
    /// The largest module scale accepted.
    static let maximumScale = 64
    /// The widest quiet zone accepted, in modules.
    static let maximumQuietZone = 64

    /// Appends a chunk: length, type, data, CRC-32 of type and data.
    static func appendChunk(_ type: String, _ data: [UInt8], to png: inout [UInt8]) {
        let typeAndData = Array(type.utf8) + data
        png.appendBigEndian(UInt32(data.count))
        png += typeAndData
        let crc = typeAndData.withUnsafeBufferPointer { buffer in
            crc32(0, buffer.baseAddress, uInt(buffer.count))
        }
        png.appendBigEndian(UInt32(truncatingIfNeeded: crc))
    }

    /// The zlib stream (RFC 1950) of `data` at the best compression.
    /// Should zlib fail, which it only does without memory, the data is
    /// stored uncompressed in a valid zlib stream instead.
    static func zlibCompress(_ data: [UInt8]) -> [UInt8] {
        var capacity = compressBound(uLong(data.count))
        var output = [UInt8](repeating: 0, count: Int(capacity))
        let status = output.withUnsafeMutableBufferPointer { out in
            data.withUnsafeBufferPointer { input in
                compress2(out.baseAddress, &capacity, input.baseAddress, uLong(input.count), Z_BEST_COMPRESSION)
            }
        }
        guard status == Z_OK else { return storedZlibStream(data) }
        return Array(output.prefix(Int(capacity)))
    }

    /// A zlib stream of uncompressed ("stored") deflate blocks.
    static func storedZlibStream(_ data: [UInt8]) -> [UInt8] {
        let maximumStoredBlock = 65_535
        var stream: [UInt8] = [0x78, 0x01]  // deflate, 32 KiB window; 0x7801 is divisible by 31
        var start = 0
        repeat {
            let end = min(start + maximumStoredBlock, data.count)
            let length = UInt16(end - start)
            stream.append(end == data.count ? 1 : 0)  // BFINAL, BTYPE 00
            stream += [UInt8(length & 0xFF), UInt8(length >> 8), UInt8(~length & 0xFF), UInt8(~length >> 8)]
            stream += data[start..<end]
            start = end
        } while start < data.count
        let adler = data.withUnsafeBufferPointer { adler32(1, $0.baseAddress, uInt($0.count)) }
        stream.appendBigEndian(UInt32(truncatingIfNeeded: adler))
        return stream
    }
}

extension [UInt8] {
    mutating func appendBigEndian(_ value: UInt32) {
        append(UInt8(value >> 24))
        append(UInt8(value >> 16 & 0xFF))
        append(UInt8(value >> 8 & 0xFF))
        append(UInt8(value & 0xFF))
    }
}
