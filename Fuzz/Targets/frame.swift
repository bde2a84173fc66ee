import ChipChannel

/// Fuzz target `frame`: the frame decoder fed the input in arbitrary chunks.
///
/// Input layout: byte 0 picks the reader's length limit (low 2 bits) and how
/// many chunk-size bytes follow (bits 2-4, 0-7); those bytes give the chunk
/// sizes (1-256, cycled); the rest is the byte stream. Properties checked:
/// the frames returned re-encode to exactly the bytes they were read from,
/// the chunking does not change the result, and the buffer never holds more
/// than one frame plus one chunk.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = bytes(data, size)
    guard let control = input.first else { return 0 }
    let limits = [FrameLimits.maxLength, FrameLimits.minLength, 100, 1024]
    let maxLength = limits[Int(control & 3)]
    let sizeCount = min(Int(control >> 2 & 7), input.count - 1)
    let chunkSizes = sizeCount == 0 ? [4096] : input[1...sizeCount].map { Int($0) + 1 }
    let stream = Array(input[(1 + sizeCount)...])

    let chunked = read(stream, chunkSizes: chunkSizes, maxLength: maxLength)
    let whole = read(stream, chunkSizes: [max(stream.count, 1)], maxLength: maxLength)
    guard chunked.frames == whole.frames, chunked.error == whole.error else {
        violated("chunking changed the frames or the error")
    }
    let consumed = chunked.frames.flatMap(\.encoded)
    guard consumed.count <= stream.count, consumed[...] == stream[..<consumed.count] else {
        violated("frames do not re-encode to the bytes they were read from")
    }
    return 0
}

/// Feeds `stream` to a reader chunk by chunk, taking every frame as soon as
/// it is complete, until the end or the first error (which closes a connection).
private func read(_ stream: [UInt8], chunkSizes: [Int], maxLength: Int) -> (frames: [Frame], error: FrameError?) {
    var reader = FrameReader(maxLength: maxLength)
    var frames: [Frame] = []
    var offset = 0, n = 0
    while offset < stream.count {
        let chunk = chunkSizes[n % chunkSizes.count]
        n += 1
        reader.append(stream[offset..<min(offset + chunk, stream.count)])
        offset += chunk
        do {
            while let frame = try reader.next() {
                guard frame.body.count + 1 <= reader.maxLength else { violated("frame longer than the limit") }
                frames.append(frame)
            }
        } catch {
            return (frames, error)
        }
        guard reader.bufferedCount <= FrameLimits.lengthPrefixBytes + reader.maxLength + chunk else {
            violated("reader buffers \(reader.bufferedCount) bytes")
        }
    }
    return (frames, nil)
}
