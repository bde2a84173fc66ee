/// The evaluation of a masked symbol (ISO/IEC 18004, 7.8.3): the mask with
/// the lowest total penalty is chosen.
enum Penalty {
    /// N1: penalty for five adjacent modules of one colour in a row or column,
    /// plus one for each further module of the run.
    static let n1 = 3
    /// N2: penalty for each 2 × 2 block of one colour (overlapping blocks count).
    static let n2 = 3
    /// N3: penalty for each 1:1:3:1:1 finder-like pattern with four light
    /// modules before or after it.
    static let n3 = 40
    /// N4: penalty for each 5 % step that the dark share deviates from 50 %.
    static let n4 = 10
    /// The shortest run that rule 1 penalizes.
    static let minimumPenalizedRun = 5
    /// The finder-like pattern of rule 3: dark, light, dark × 3, light, dark.
    static let finderLikePattern: [Bool] = [true, false, true, true, true, false, true]
    /// The light area that must flank a finder-like pattern in rule 3.
    static let finderLikeLightArea = 4

    /// The total penalty of a symbol given row by row.
    static func score(_ modules: [Bool], size: Int) -> Int {
        modules.withUnsafeBufferPointer { grid in
            var total = 0
            for line in 0..<size {
                total += lineScore(grid, start: line * size, stride: 1, count: size)
                total += lineScore(grid, start: line, stride: size, count: size)
            }
            return total + blockScore(grid, size: size) + balanceScore(grid)
        }
    }

    /// Rules 1 and 3 along one row or column.
    static func lineScore(_ line: [Bool]) -> Int {
        line.withUnsafeBufferPointer { lineScore($0, start: 0, stride: 1, count: line.count) }
    }

    /// The finder-like pattern of rule 3 with four light modules on each
    /// side, as the bits of a 15-module window (first module highest).
    private static let patternWindowBits = 2 * finderLikeLightArea + finderLikePattern.count
    private static let patternInWindow: Int = finderLikePattern.reduce(0) { $0 << 1 | ($1 ? 1 : 0) } << finderLikeLightArea
    private static let patternMask = ((1 << finderLikePattern.count) - 1) << finderLikeLightArea
    private static let lightAreaMask = (1 << finderLikeLightArea) - 1
    private static let windowMask = (1 << patternWindowBits) - 1

    /// Rules 1 and 3 along `count` modules of `grid` from `start`, `stride` apart.
    ///
    /// Rule 1: N1 + (length − 5) for each run of five or more modules of one
    /// colour. Rule 3: N3 for each 1:1:3:1:1 pattern with four light modules
    /// on at least one side; modules beyond the symbol count as light (they
    /// are the quiet zone). The pattern is found in a sliding 15-module window.
    static func lineScore(_ grid: UnsafeBufferPointer<Bool>, start: Int, stride: Int, count: Int) -> Int {
        var score = 0
        var runLength = 0
        var runColour = false
        var window = 0
        // The line followed by a light area's worth of quiet zone; the window
        // starts out light, as the quiet zone before the line is.
        for index in 0..<(count + finderLikeLightArea) {
            let module = index < count ? grid[start + index * stride] : false
            if index < count {
                if index > 0 && module == runColour {
                    runLength += 1
                } else {
                    if runLength >= minimumPenalizedRun { score += n1 + runLength - minimumPenalizedRun }
                    runColour = module
                    runLength = 1
                }
            }
            window = (window << 1 | (module ? 1 : 0)) & windowMask
            if window & patternMask == patternInWindow
                && (window & lightAreaMask == 0 || window >> (patternWindowBits - finderLikeLightArea) == 0)
            {
                score += n3
            }
        }
        if runLength >= minimumPenalizedRun { score += n1 + runLength - minimumPenalizedRun }
        return score
    }

    /// Rule 2: N2 for each 2 × 2 block of one colour.
    static func blockScore(_ modules: [Bool], size: Int) -> Int {
        modules.withUnsafeBufferPointer { blockScore($0, size: size) }
    }

    static func blockScore(_ modules: UnsafeBufferPointer<Bool>, size: Int) -> Int {
        var score = 0
        for y in 0..<(size - 1) {
            for x in 0..<(size - 1) {
                let colour = modules[y * size + x]
                if modules[y * size + x + 1] == colour && modules[(y + 1) * size + x] == colour
                    && modules[(y + 1) * size + x + 1] == colour
                {
                    score += n2
                }
            }
        }
        return score
    }

    /// Rule 4: N4 × k where the dark share lies between 50 ± 5k % and 50 ± 5(k + 1) %.
    static func balanceScore(_ modules: [Bool]) -> Int {
        modules.withUnsafeBufferPointer { balanceScore($0) }
    }

    static func balanceScore(_ modules: UnsafeBufferPointer<Bool>) -> Int {
        let total = modules.count
        guard total > 0 else { return 0 }
        var darkCount = 0
        for module in modules where module { darkCount += 1 }
        // |dark/total − 1/2| / 5 % = |20 dark − 10 total| / total.
        let k = abs(20 * darkCount - 10 * total) / total
        return n4 * k
    }
}
