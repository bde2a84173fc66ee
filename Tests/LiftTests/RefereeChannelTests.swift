import ChipModel
import Testing
@testable import ChipProtocol

@Suite struct RefereeChannelTests {
    @Test func carriesOnlyCommitAbortQuery() {
        let v = MessageValidatorTests()
        let admitted = v.liftMessages.filter { RefereeChannel.admits(.lift($0)) }.map(\.action)
        #expect(admitted == [.commit, .abort, .query])
        #expect(!RefereeChannel.admits(.route(v.route(.noRoute(qid: Fx.qid, reason: .busy)))))
    }

    @Test func channelCaps() {
        #expect(RefereeChannel.accepts(fromAddress: 3, open: 255))
        #expect(!RefereeChannel.accepts(fromAddress: 4, open: 10))
        #expect(!RefereeChannel.accepts(fromAddress: 0, open: 256))
    }

    @Test func rateIsTenASecondWithABurstOfTwenty() {
        var r = RefereeRate(now: 0)
        func takes(_ n: Int, at now: Int64) -> Int {
            var taken = 0
            for _ in 0..<n where r.take(now: now) { taken += 1 }
            return taken
        }
        let burst = takes(25, at: 0)
        #expect(burst == 20)
        let early = takes(1, at: 99), onTime = takes(1, at: 100), between = takes(1, at: 150)
        #expect(early == 0 && onTime == 1 && between == 0)  // one token per 100 ms
        // A long pause refills to the burst, no more.
        let refilled = takes(25, at: 60_000)
        #expect(refilled == 20)
        // A clock going back gives nothing.
        let back = takes(1, at: 1000)
        #expect(back == 0)
    }
}
