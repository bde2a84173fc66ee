import Foundation
import Testing
import TestSupport

/// The one place the version is decided.
func packagedVersion() throws -> String {
    try String(contentsOfFile: repoRoot + "/packaging/VERSION", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
}

func toolExists(_ name: String) -> Bool {
    ["/usr/bin/", "/bin/", "/usr/sbin/", "/sbin/"].contains { FileManager.default.isExecutableFile(atPath: $0 + name) }
}

@Suite struct PackagingTests {
    @Test func versionComesFromPackagingVersion() throws {
        let r = try chipsite(["--version"])
        #expect(r.code == 0)
        #expect(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == (try packagedVersion()))
    }

    /// Builds the .deb around the binary under test, unpacks it and checks
    /// what a host would get. `make deb` does the same with the static release binary.
    @Test(.enabled(if: toolExists("dpkg-deb"), "needs dpkg-deb (make deps installs dpkg-dev)"))
    func debUnpacksToAWorkingSite() throws {
        let dir = try TempDir()
        let built = try run(
            "/bin/bash", [repoRoot + "/packaging/build-deb.sh", dir.file("dist")],
            environment: ["CHIPSITE_DEB_BIN": try chipsiteBinary(), "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"],
            timeout: 300)
        #expect(built.code == 0, "\(built.stderr)")
        let version = try packagedVersion()
        let arch = try run("/usr/bin/dpkg", ["--print-architecture"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let deb = dir.file("dist/chipsite_\(version)_\(arch).deb")
        #expect(built.stdout.contains(deb))
        let info = try run("/usr/bin/dpkg-deb", ["-f", deb, "Package", "Version", "Architecture", "Depends"])
        #expect(info.stdout.contains("Package: chipsite") && info.stdout.contains("Version: \(version)"))
        #expect(info.stdout.contains("Depends: adduser"))

        let root = dir.file("root")
        #expect(try run("/usr/bin/dpkg-deb", ["-x", deb, root]).code == 0)
        let bin = root + "/usr/bin/chipsite"
        let v = try run(bin, ["--version"])
        #expect(v.code == 0 && v.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == version)
        let db = dir.file("site.db")
        #expect(try run(bin, ["init", "--db", db, "--host", "deb.example"]).code == 0)
        let status = try json(try run(bin, ["status", "--db", db, "--json"]).stdout)
        #expect(status["host"] as? String == "deb.example")
        #expect(try run("/usr/bin/file", [bin]).stdout.contains("stripped") && !(try run("/usr/bin/file", [bin]).stdout.contains("not stripped")))

        let man = root + "/usr/share/man/man1/"
        let manPages = try FileManager.default.contentsOfDirectory(atPath: man)
        let sources = try FileManager.default.contentsOfDirectory(atPath: repoRoot + "/man").filter { $0.hasSuffix(".1") }
        #expect(Set(manPages) == Set(sources.map { $0 + ".gz" }))
        for page in ["chipsite.1.gz", "chipsite.backup.1.gz", "chipsite.doctor.1.gz", "chipsite.serve.1.gz"] {
            #expect(manPages.contains(page), "\(page) missing")
        }
        let manText = try run("/bin/sh", ["-c", "gzip -dc '\(man)chipsite.1.gz'"])
        #expect(manText.stdout.contains(".Sh NAME") || manText.stdout.contains(".SH NAME"))

        for (path, marker) in [
            ("/usr/share/bash-completion/completions/chipsite", "complete"),
            ("/usr/share/zsh/vendor-completions/_chipsite", "#compdef chipsite"),
            ("/usr/share/fish/vendor_completions.d/chipsite.fish", "complete -c 'chipsite'")
        ] {
            let text = (try? String(contentsOfFile: root + path, encoding: .utf8)) ?? ""
            #expect(text.contains(marker) && text.contains("backup"), "\(path)")
        }

        // The license, in Debian's machine-readable copyright format.
        let copyright = (try? String(contentsOfFile: root + "/usr/share/doc/chipsite/copyright", encoding: .utf8)) ?? ""
        #expect(copyright.hasPrefix("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"))
        #expect(copyright.contains("\nLicense: Apache-2.0\n") && copyright.contains("/usr/share/common-licenses/Apache-2.0"))

        let unitPath = root + "/lib/systemd/system/chipsite.service"
        let unit = try String(contentsOfFile: unitPath, encoding: .utf8)
        for line in [
            "ExecStart=/usr/bin/chipsite serve --db /var/lib/chipsite/site.db", "User=chipsite", "StateDirectory=chipsite",
            "StateDirectoryMode=0700", "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
            "PrivateDevices=yes", "ProtectKernelTunables=yes", "ProtectKernelModules=yes", "ProtectControlGroups=yes",
            "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX", "RestrictNamespaces=yes", "LockPersonality=yes",
            "MemoryDenyWriteExecute=yes", "SystemCallArchitectures=native", "CapabilityBoundingSet=\n", "Restart=on-failure"
        ] {
            #expect(unit.contains(line), "unit lacks \(line)")
        }
        if toolExists("systemd-analyze") {
            // Verified with ExecStart pointing at the unpacked binary (the real path does not exist here).
            let local = dir.file("chipsite.service")
            try unit.replacingOccurrences(of: "/usr/bin/chipsite", with: bin).write(toFile: local, atomically: true, encoding: .utf8)
            let verify = try run("/usr/bin/env", ["systemd-analyze", "verify", "--man=no", local], timeout: 60)
            #expect(verify.code == 0, "\(verify.stdout)\(verify.stderr)")
        }

        // The maintainer scripts never remove, move or write a site file.
        for script in ["postinst", "prerm", "postrm"] {
            let text = try String(contentsOfFile: repoRoot + "/packaging/debian/" + script, encoding: .utf8)
            let commands = text.split(separator: "\n").filter { !$0.trimmingCharacters(in: .whitespaces).hasPrefix("#") && !$0.contains("echo ") }
            #expect(
                !commands.contains { $0.contains("rm ") || $0.contains("mv ") || $0.contains("> /var/lib") || $0.contains("chipsite init") },
                "\(script)")
        }
        let control = dir.file("control")
        #expect(try run("/usr/bin/dpkg-deb", ["-e", deb, control]).code == 0)
        let postinst = try String(contentsOfFile: control + "/postinst", encoding: .utf8)
        #expect(postinst.contains("adduser --system --group --home /var/lib/chipsite --no-create-home"))
        #expect(try run("/bin/sh", ["-n", control + "/postinst"]).code == 0)
        #expect(try run("/bin/sh", ["-n", control + "/prerm"]).code == 0)
        #expect(try run("/bin/sh", ["-n", control + "/postrm"]).code == 0)
    }
}
