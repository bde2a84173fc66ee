import ChipModel
import Testing
@testable import ChipProtocol

/// 10.5's event order: seq order, no gaps, each once, a command's events held
/// until its reply is out; the device drops what it has seen.
@Suite struct UserEventTests {
    func event(_ seq: Int64, _ topic: UserTopic = .chit, kind: SignKind? = nil) -> UserEvent {
        UserEvent(topic: topic, seq: seq, data: kind.map { ["kind": .string($0.rawValue)] } ?? [:])
    }

    @Test func eventsGoInSeqOrderWithNoGapsAndOnce() {
        var q = UserEventQueue(since: 10, topics: nil, scopes: Set(UserScope.allCases))
        #expect(q.add(event(9)).isEmpty && q.add(event(10)).isEmpty)  // already passed
        #expect(q.add(event(12)).isEmpty)  // 11 is missing
        #expect(q.add(event(11)).map(\.seq) == [11, 12])
        #expect(q.add(event(12)).isEmpty && q.add(event(11)).isEmpty)  // repeats
        #expect(q.passed == 12 && q.waitingCount == 0)
    }

    @Test func aCommandsEventsWaitForItsReply() {
        var q = UserEventQueue(since: 0, topics: nil, scopes: Set(UserScope.allCases))
        #expect(q.add(event(1)).map(\.seq) == [1])
        q.hold("pay-1", from: 2)
        #expect(q.add(event(2)).isEmpty && q.add(event(3)).isEmpty)  // 3 is later: held too
        q.hold("pay-2", from: 3)
        #expect(q.replySent("pay-2").isEmpty)  // pay-1's reply has not gone out
        #expect(q.replySent("pay-1").map(\.seq) == [2, 3])
        #expect(q.replySent("unknown").isEmpty)
    }

    @Test func unwantedAndInvisibleEventsAdvanceSilently() {
        var q = UserEventQueue(since: 0, topics: [.chit, .sign, .device], scopes: [.read, .pay])
        let out = [event(1, .tally), event(2, .chit), event(3, .device), event(4, .sign, kind: .offer), event(5, .sign, kind: .invoice)]
            .flatMap { q.add($0) }
        #expect(out.map(\.seq) == [2, 5])
        #expect(q.passed == 5)
        var none = UserEventQueue(since: 0, topics: nil, scopes: [.pay])
        #expect(none.add(event(1)).isEmpty && none.passed == 1)
    }

    @Test func theDeviceDropsWhatItHasProcessed() {
        var c = UserEventCursor(highest: 4)
        #expect(!c.accept(3) && !c.accept(4) && c.accept(5) && !c.accept(5) && c.accept(9))
        #expect(c.highest == 9)
        c.resync(latest: 20)
        #expect(!c.accept(20) && c.accept(21))
    }
}
