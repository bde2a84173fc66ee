import CSodium
public enum SodiumCheck { public static func ready() -> Bool { sodium_init() >= 0 } }
