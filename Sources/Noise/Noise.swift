import CSodium
public enum NoiseVersion { public static let revision = 34 }
