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
        var total = 0
        var line = [Bool](repeating: false, count: size)
        for y in 0..<size {
            for x in 0..<size { line[x] = modules[y * size + x] }
            total += lineScore(line)
        }
        for x in 0..<size {
            for y in 0..<size { line[y] = modules[y * size + x] }
            total += lineScore(line)
        }
        total += blockScore(modules, size: size)
        total += balanceScore(modules)
        return total
    }

    /// Rules 1 and 3 along one row or column.
    static func lineScore(_ line: [Bool]) -> Int {
        runScore(line) + finderLikeScore(line)
    }

    /// Rule 1: N1 + (length − 5) for each run of five or more modules of one colour.
    static func runScore(_ line: [Bool]) -> Int {
        var score = 0
        var runLength = 0
        var runColour = false
        for (index, module) in line.enumerated() {
            if index > 0 && module == runColour {
                runLength += 1
            } else {
                if runLength >= minimumPenalizedRun { score += n1 + runLength - minimumPenalizedRun }
                runColour = module
                runLength = 1
            }
        }
        if runLength >= minimumPenalizedRun { score += n1 + runLength - minimumPenalizedRun }
        return score
    }

    /// Rule 3: N3 for each 1:1:3:1:1 pattern with four light modules on at
    /// least one side; modules beyond the symbol count as light (the quiet zone).
    static func finderLikeScore(_ line: [Bool]) -> Int {
        let patternLength = finderLikePattern.count
        guard line.count >= patternLength else { return 0 }
        func isLight(_ range: Range<Int>) -> Bool {
            range.allSatisfy { $0 < 0 || $0 >= line.count || !line[$0] }
        }
        var score = 0
        for start in 0...(line.count - patternLength) {
            var matches = true
            for offset in 0..<patternLength where line[start + offset] != finderLikePattern[offset] {
                matches = false
                break
            }
            guard matches else { continue }
            let end = start + patternLength
            if isLight((start - finderLikeLightArea)..<start) || isLight(end..<(end + finderLikeLightArea)) {
                score += n3
            }
        }
        return score
    }

    /// Rule 2: N2 for each 2 × 2 block of one colour.
    static func blockScore(_ modules: [Bool], size: Int) -> Int {
        var score = 0
        for y in 0..<(size - 1) {
            for x in 0..<(size - 1) {
                let colour = modules[y * size + x]
                if modules[y * size + x + 1] == colour && modules[(y + 1) * size + x] == colour
                    && modules[(y + 1) * size + x + 1] == colour {
                    score += n2
                }
            }
        }
        return score
    }

    /// Rule 4: N4 × k where the dark share lies between 50 ± 5k % and 50 ± 5(k + 1) %.
    static func balanceScore(_ modules: [Bool]) -> Int {
        let total = modules.count
        guard total > 0 else { return 0 }
        let darkCount = modules.reduce(0) { $0 + ($1 ? 1 : 0) }
        // |dark/total − 1/2| / 5 % = |20 dark − 10 total| / total.
        let k = abs(20 * darkCount - 10 * total) / total
        return n4 * k
    }
}
