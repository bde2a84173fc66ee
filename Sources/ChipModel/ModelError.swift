/// Why a value from outside (a file, a message, an argument) was refused.
/// The text is one line, fit to follow "chipsite: error: ".
public enum ModelError: Error, Equatable, Sendable, CustomStringConvertible {
    case malformed(String)
    case invalid(String)

    public var description: String {
        switch self {
        case .malformed(let why), .invalid(let why): return why
        }
    }
}
