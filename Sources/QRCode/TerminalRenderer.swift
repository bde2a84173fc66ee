/// The terminal colours that a text rendering assumes.
///
/// A terminal draws characters in its foreground colour on its background
/// colour, and a QR code must be read as dark modules on a light ground
/// (scanners commonly reject inverted codes). Which modules to draw as
/// "ink" therefore depends on the terminal:
///
/// - ``dark`` (the default): light text on a dark background, the default of
///   most terminal emulators and consoles. The light modules and the quiet
///   zone are drawn with block characters, so they show in the light
///   foreground colour; the dark modules are left blank and show the dark
///   background.
/// - ``light``: dark text on a light background. The dark modules are drawn
///   and the light ones and the quiet zone left blank.
///
/// Choosing the wrong one yields an inverted code that many scanners refuse.
public enum TerminalBackground: Sendable, Hashable, CaseIterable {
    /// Light text on a dark background: light modules are drawn.
    case dark
    /// Dark text on a light background: dark modules are drawn.
    case light
}

extension QRCode {
    /// The symbol as lines of Unicode half blocks, two module rows per line
    /// (`▀` upper, `▄` lower, `█` both, space neither), surrounded by a
    /// `quietZone` of light modules (clamped to 0...64), every line ending in
    /// a newline and equally long. See ``TerminalBackground`` for which modules
    /// are drawn; below an odd number of rows the last line's lower half is blank.
    public func terminalString(
        background: TerminalBackground = .dark,
        quietZone: Int = QRCode.quietZoneModules
    ) -> String {
        let quietZone = min(max(quietZone, 0), HalfBlocks.maximumQuietZone)
        let across = size + 2 * quietZone
        let ink: [[Bool]] = (0..<across).map { y in
            (0..<across).map { x in
                let isDark = isDark(x: x - quietZone, y: y - quietZone)
                return background == .light ? isDark : !isDark
            }
        }
        return HalfBlocks.render(ink)
    }
}

/// Text rendering of a bit matrix with half block characters.
enum HalfBlocks {
    /// Upper half block: ink in the upper row only.
    static let upperHalf: Character = "\u{2580}"
    /// Lower half block: ink in the lower row only.
    static let lowerHalf: Character = "\u{2584}"
    /// Full block: ink in both rows.
    static let fullBlock: Character = "\u{2588}"
    /// Space: ink in neither row.
    static let blank: Character = " "
    /// The widest quiet zone accepted, in modules.
    static let maximumQuietZone = 64

    /// One line per two rows of `ink` (row-major, `true` = drawn), each
    /// ending in a newline. A missing last lower row counts as not drawn.
    static func render(_ ink: [[Bool]]) -> String {
        var text = ""
        for top in stride(from: 0, to: ink.count, by: 2) {
            let upper = ink[top]
            let lower = top + 1 < ink.count ? ink[top + 1] : Array(repeating: false, count: upper.count)
            for (u, l) in zip(upper, lower) {
                switch (u, l) {
                case (true, true): text.append(fullBlock)
                case (true, false): text.append(upperHalf)
                case (false, true): text.append(lowerHalf)
                case (false, false): text.append(blank)
                }
            }
            text.append("\n")
        }
        return text
    }
}
