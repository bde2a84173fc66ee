import ChipModel
import ChipProtocol
import ChipStore
import Testing
@testable import ChipDaemon

/// How serve's command runner tells a device what went wrong (protocol
/// 10.5): by the error's case, never by the wording of its message.
@Suite struct UserErrorMappingTests {
    static func mapped(_ error: any Error) -> UserError { UserCommandRunner.userError(error) }

    @Test func storeErrorsMapByTheirCase() {
        #expect(Self.mapped(StoreError.locked("user alice is locked")) == UserError(.locked, "user alice is locked"))
        #expect(Self.mapped(StoreError.overLimit("the payment would exceed")) == UserError(.limit, "the payment would exceed"))
        #expect(Self.mapped(StoreError.notFound("no tally 1234")) == UserError(.notFound, "no tally 1234"))
        #expect(Self.mapped(StoreError.unknownUser("alice")) == UserError(.notFound, "no such device or user"))
        #expect(Self.mapped(StoreError.deviceLimit("alice")).code == .limit)
        #expect(Self.mapped(StoreError.deviceCustody("alice")).code == .state)
        #expect(Self.mapped(StoreError.busy(path: "/srv/site.db")) == UserError(.internal, "the site is busy; try again"))
        // The site's own failures say nothing of its file.
        for e in [StoreError.damaged("page 7"), .database("disk I/O"), .passphraseNeeded, .cannotOpen(path: "/srv/site.db", reason: "gone")] {
            #expect(Self.mapped(e) == UserError(.internal, "the site could not do that now"))
        }
    }

    @Test func modelErrorsAreTheRequestsOrTheStatesWhateverTheirWords() {
        // Words that once steered the mapping mean nothing now.
        #expect(Self.mapped(ModelError.invalid("user alice is locked")).code == .state)
        #expect(Self.mapped(ModelError.invalid("over the limit")).code == .state)
        #expect(Self.mapped(ModelError.invalid("no more offers")).code == .state)
        #expect(Self.mapped(ModelError.malformed("limit must be 0 or more milliCHIPs")).code == .badRequest)
    }
}
