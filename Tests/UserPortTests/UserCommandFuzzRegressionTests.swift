import ChipModel
import Foundation
import Testing
@testable import ChipProtocol

/// The `user_command` fuzz inputs (Fuzz/corpus/user_command/ and any kept in
/// Fuzz/regressions/user_command/) replayed with the properties of
/// Fuzz/Targets/user_command.swift.
@Suite struct UserCommandFuzzRegressionTests {
    @Test func replay() throws {
        let fuzz = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Fuzz")
        var parsed = Set<String>(), count = 0
        for kind in ["corpus", "regressions"] {
            let dir = fuzz.appendingPathComponent(kind).appendingPathComponent("user_command")
            for name in ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).sorted() {
                guard let data = FileManager.default.contents(atPath: dir.appendingPathComponent(name).path) else { continue }
                count += 1
                switch parse([UInt8](data)) {
                case .success(let request):
                    parsed.insert(request.command.name)
                    #expect(try UserRequest(parsing: request.json.canonicalBytes) == request, "\(name): round trip")
                case .failure(.reply(_, let e)):
                    #expect(UserErrorCode.allCases.contains(e.code))
                case .failure(.closeSession):
                    break
                }
            }
        }
        #expect(count >= 25, "seeds missing")
        // The seeds hold a good request for every command of 10.6.
        #expect(parsed == Set(DeviceCommand.names))
    }
}
