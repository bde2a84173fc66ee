import ChipModel
import ChipProtocol
import Testing

/// `lift.referees` read as 9.8's accept list, and site addresses in text form.
@Suite struct LiftSettingsTests {
    let me: AgentID, partner: AgentID, stranger: AgentID

    init() throws {
        me = try AgentID(publicKey: SigningKey.generate().publicKey)
        partner = try AgentID(publicKey: SigningKey.generate().publicKey)
        stranger = try AgentID(publicKey: SigningKey.generate().publicKey)
    }

    @Test func aSiteAddressReadsBackFromItsText() throws {
        for address in [try SiteAddress(host: "chips.example", port: 7000), try SiteAddress(host: "::1", port: 65430)] {
            let site = LiftSite(agent: me, address: address)
            let read = try LiftSite(text: site.description)
            #expect(read.agent == me && read.address == address)
        }
        #expect(try LiftSite(text: "\(me)@chips.example").address.port == SiteAddress.defaultPort)
        for bad in ["\(me)", "\(me)@", "\(me)@h:", "\(me)@h:70000", "\(me)@::1:7", "\(me)@[::1", "\(me)@[::1]7", "x@h:1", "\(me)@h:+1"] {
            #expect(throws: ModelError.self, "\(bad)") { try LiftSite(text: bad) }
        }
    }

    @Test func thePoliciesAcceptWhatTheySay() throws {
        let partners: Set<AgentID> = [partner]
        #expect(RefereePolicy.any.accepts(stranger, site: me, partners: partners))
        #expect(!RefereePolicy.any.accepts(stranger, site: me, partners: partners, dropped: [stranger]))
        #expect(!RefereePolicy.none.accepts(me, site: me, partners: partners))
        #expect(RefereePolicy.partners.accepts(me, site: me, partners: partners))
        #expect(RefereePolicy.partners.accepts(partner, site: me, partners: partners))
        #expect(!RefereePolicy.partners.accepts(stranger, site: me, partners: partners))
        let list = try RefereePolicy(text: "\(stranger)@s.example:1 , \(partner)@[::1]:2")
        #expect(list == .list([stranger, partner]))
        #expect(list.accepts(stranger, site: me, partners: []) && !list.accepts(me, site: me, partners: []))
        #expect(try RefereePolicy(text: "partners") == .partners && RefereePolicy(text: "none") == RefereePolicy.none)
        for bad in ["", "Any", ",", "\(me)@h:1,,\(partner)@h:1", "\(me)@h:1,\(me)@g:2"] {
            #expect(throws: ModelError.self, "\(bad)") { try RefereePolicy(text: bad) }
        }
        let many = (0...RefereePolicy.maxListed).map { _ in "\((try? AgentID(publicKey: SigningKey.generate().publicKey))?.description ?? "")@h:1" }
        #expect(throws: ModelError.self) { try RefereePolicy(text: many.joined(separator: ",")) }
    }
}
