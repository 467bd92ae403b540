using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace Interceptor.IntegrationTests;

/// <summary>
/// The Debian package: built once for the fixture by packaging/build-deb (a self-contained publish, minutes),
/// then checked as a file (contents, control data, lintian, the units' systemd security exposure), run from an
/// extracted copy as an unprivileged user with only CAP_NET_ADMIN and CAP_NET_BIND_SERVICE (end to end in a network namespace), and
/// installed, upgraded, removed and purged with dpkg in a throwaway root: an overlay of the host's own root in a
/// private mount and network namespace, so the host's packages, users and ruleset are never touched.
/// SMTPI_TEST_DEB=path/to.deb skips the build (for quick reruns).
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed partial class PackagingTests
{
    private const string PackageUser = "smtp-interceptor";
    private const double MaxExposure = 2.5;
    private const string DaemonUserName = "smtpi-pkgd";

    // Its own client user rather than the shared smtpi-alice: another test run on the same machine may delete and
    // re-create that account meanwhile, and its old uid could then be handed to the daemon user.
    private const string ClientUserName = "smtpi-pkgc";

    /// <summary>lintian warnings left on purpose (none today; the one override is in packaging/debian/lintian-overrides, explained in packaging/README.md).</summary>
    private static readonly string[] AcceptedLintianTags = [];

    private static string? _deb;
    private static string? _extracted;

    private static string Deb => _deb ?? throw new InvalidOperationException("no package: the fixture set-up failed");

    private static string Extracted => _extracted ?? throw new InvalidOperationException("package not extracted");

    private static string RepositoryRoot => PackageBuild.RepositoryRoot;

    [OneTimeSetUp]
    public async Task BuildPackage()
    {
        Requirements.Ensure();
        _deb = await PackageBuild.GetAsync();
        await ExtractAsync();
    }

    /// <summary>`dpkg-deb -x` into a world-traversable directory, so the throwaway daemon user can run the binary.</summary>
    private static async Task ExtractAsync()
    {
        var dir = Directory.CreateTempSubdirectory("smtpi-deb-x-").FullName;
        File.SetUnixFileMode(dir, (UnixFileMode)0b111_101_101);
        await ProcessRunner.RunCheckedAsync("dpkg-deb", "-x", Deb, dir);
        _extracted = dir;
    }

    [OneTimeTearDown]
    public static void DeletePackage()
    {
        if (_extracted is not null)
        {
            Directory.Delete(_extracted, recursive: true);
            _extracted = null;
        }

        // The package itself is shared with BootedPackageTests; PackageBuild deletes it when the run ends.
    }

    [Test]
    public async Task Package_has_the_version_of_Directory_Build_props_and_the_expected_files()
    {
        var props = await File.ReadAllTextAsync(Path.Combine(RepositoryRoot, "Directory.Build.props"));
        var version = VersionElement().Match(props).Groups[1].Value;
        Assert.That(Path.GetFileName(Deb), Is.EqualTo($"smtp-interceptor_{version}_amd64.deb"));

        var fields = await ProcessRunner.RunCheckedAsync("dpkg-deb", "-f", Deb, "Package", "Version", "Architecture", "Depends");
        var contents = await ProcessRunner.RunCheckedAsync("dpkg-deb", "-c", Deb);
        var conffiles = await ProcessRunner.RunCheckedAsync("dpkg-deb", "--info", Deb, "conffiles");
        var listing = contents.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var paths = listing.Select(l => l[(l.IndexOf("./", StringComparison.Ordinal) + 1)..]).ToList();
        string[] expected =
        [
            "/usr/bin/smtp-interceptor -> ../lib/smtp-interceptor/smtp-interceptor",
            "/usr/lib/smtp-interceptor/smtp-interceptor",
            "/usr/lib/smtp-interceptor/smtp-interceptor.dll",
            "/usr/lib/smtp-interceptor/libcoreclr.so",
            "/usr/lib/smtp-interceptor/libe_sqlite3.so",
            "/etc/smtp-interceptor/smtp-interceptor.json",
            "/lib/systemd/system/smtp-interceptor.service",
            "/lib/systemd/system/smtp-interceptor-rules.service",
            "/usr/share/doc/smtp-interceptor/README.md",
            "/usr/share/doc/smtp-interceptor/copyright",
            "/usr/share/doc/smtp-interceptor/changelog.gz",
            "/usr/share/doc/smtp-interceptor/nftables/README.md",
            "/usr/share/doc/smtp-interceptor/nftables/smtp_interceptor.nft",
            "/usr/share/man/man1/smtp-interceptor.1.gz",
            "/usr/share/smtp-interceptor/smtp-interceptor.rules.yml",
            "/usr/share/smtp-interceptor/smtp-interceptor.rules.test.yml",
            "/usr/share/smtp-interceptor/smtp-interceptor.dashboard.json",
        ];
        Assert.Multiple(() =>
        {
            Assert.That(fields.Stdout, Does.Contain("Package: smtp-interceptor"));
            Assert.That(fields.Stdout, Does.Contain($"Version: {version}\n"));
            Assert.That(fields.Stdout, Does.Contain("Architecture: amd64"));
            Assert.That(fields.Stdout, Does.Contain("nftables").And.Contain("adduser").And.Contain("libc6").And.Contain("libssl3"), "Depends");
            Assert.That(conffiles.Stdout.Trim(), Is.EqualTo("/etc/smtp-interceptor/smtp-interceptor.json"), "conffiles");
            foreach (var path in expected)
            {
                Assert.That(paths, Does.Contain(path), contents.Stdout);
            }

            Assert.That(listing.Where(l => !l.Contains(" root/root ", StringComparison.Ordinal)), Is.Empty, "every file belongs to root");
            Assert.That(paths.Where(p => p.EndsWith(".pdb", StringComparison.Ordinal) || p.Contains("/obj/", StringComparison.Ordinal)), Is.Empty, "no debug or build leftovers");
        });
        await TestContext.Out.WriteLineAsync(fields.Stdout + contents.Stdout.Split('\n').Length + " entries");
    }

    [Test]
    public async Task Lintian_reports_no_errors_and_only_the_accepted_warnings()
    {
        if (Requirements.Which("lintian") is null)
        {
            var install = await ProcessRunner.RunAsync("apt-get", ["install", "-y", "-qq", "--no-install-recommends", "lintian"], TimeSpan.FromMinutes(10));
            Assert.That(install.Succeeded, Is.True, "lintian is missing and could not be installed:\n" + install.Describe());
        }

        var lintian = await ProcessRunner.RunAsync("lintian", ["--no-tag-display-limit", Deb], TimeSpan.FromMinutes(10));
        await TestContext.Out.WriteLineAsync(lintian.Describe());
        var lines = lintian.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var errors = lines.Where(l => l.StartsWith("E: ", StringComparison.Ordinal)).ToList();
        var unexpected = lines.Where(l => l.StartsWith("W: ", StringComparison.Ordinal))
            .Where(l => !AcceptedLintianTags.Any(tag => l.Contains($": {tag}", StringComparison.Ordinal)))
            .ToList();
        Assert.Multiple(() =>
        {
            Assert.That(lintian.TimedOut, Is.False, lintian.Describe());
            Assert.That(errors, Is.Empty, lintian.Describe());
            Assert.That(unexpected, Is.Empty, "warnings not listed in packaging/README.md:\n" + lintian.Describe());
        });
    }

    [TestCase("smtp-interceptor.service")]
    [TestCase("smtp-interceptor-rules.service")]
    public async Task Unit_offline_security_exposure_is_at_most_2_5(string unit)
    {
        var path = Path.Combine(Extracted, "lib", "systemd", "system", unit);
        var analysis = await ProcessRunner.RunAsync("systemd-analyze", ["security", "--offline=yes", "--no-pager", path], TimeSpan.FromMinutes(2));
        var match = ExposureLine().Match(analysis.Stdout + analysis.Stderr);
        Assert.That(match.Success, Is.True, "no overall exposure level:\n" + analysis.Describe());
        var exposure = double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
        await TestContext.Progress.WriteLineAsync($"security exposure of {unit}: {exposure}");
        Assert.That(exposure, Is.LessThanOrEqualTo(MaxExposure), analysis.Describe());
    }

    [Test]
    public async Task Daemon_unit_declares_notify_watchdog_restart_its_user_and_only_cap_net_admin_and_net_bind_service()
    {
        var text = await File.ReadAllTextAsync(Path.Combine(Extracted, "lib", "systemd", "system", "smtp-interceptor.service"));
        var settings = text.Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#')).ToList();
        Assert.Multiple(() =>
        {
            foreach (var line in new[]
            {
                "Type=notify", "Restart=always", "User=smtp-interceptor", "Group=smtp-interceptor",
                "CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_BIND_SERVICE", "AmbientCapabilities=CAP_NET_ADMIN CAP_NET_BIND_SERVICE", "NoNewPrivileges=yes",
                "ProtectSystem=strict", "StateDirectory=smtp-interceptor", "RuntimeDirectory=smtp-interceptor",
                "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK", "SystemCallFilter=@system-service",
                "ExecStart=/usr/bin/smtp-interceptor run --config /etc/smtp-interceptor/smtp-interceptor.json",
            })
            {
                Assert.That(settings, Does.Contain(line), text);
            }

            Assert.That(settings.Any(s => s.StartsWith("WatchdogSec=", StringComparison.Ordinal)), Is.True, "WatchdogSec");
            Assert.That(settings.Where(s => s.StartsWith("MemoryDenyWriteExecute=yes", StringComparison.Ordinal)), Is.Empty, "the JIT needs W+X");
        });
    }

    /// <summary>
    /// The packaged binary, as the unit runs it: its own unprivileged user, CAP_NET_ADMIN and CAP_NET_BIND_SERVICE (for the
    /// privileged listener port) as the only capabilities (inheritable + ambient, so nft gets them too; bounding set reduced to them), state and control socket in
    /// directories that user owns. It installs its table and relays a client user's message with that user's trace header.
    /// </summary>
    [Test]
    [CancelAfter(240_000)]
    public async Task Extracted_binary_as_its_own_user_with_only_cap_net_admin_and_net_bind_service_intercepts_and_relays()
    {
        var daemonUser = await CreateSystemUserAsync(DaemonUserName);
        var client = await CreateSystemUserAsync(ClientUserName);
        try
        {
            await using var s = await Scenario.StartAsync(startDaemon: false);
            var config = new DaemonConfig();
            var configPath = DaemonProcess.WriteConfig(s.Dir, config);
            var daemonDir = s.Dir.PathOf("daemon");
            Directory.CreateDirectory(Path.Combine(daemonDir, "state"));
            await ProcessRunner.RunCheckedAsync("chown", "-R", $"{daemonUser.Uid}:{daemonUser.Gid}", daemonDir);
            var binary = Path.Combine(Extracted, "usr", "bin", "smtp-interceptor");

            var environment = Environment.GetEnvironmentVariables().Keys.Cast<string>()
                .Where(k => k.StartsWith("SMTPI_", StringComparison.Ordinal) || k.StartsWith("DOTNET_", StringComparison.Ordinal))
                .ToDictionary(k => k, _ => (string?)null);
            environment["HOME"] = "/nonexistent";
            await using var daemon = s.Ns.StartBackground("packaged-daemon", "setpriv",
            [
                "--reuid=" + daemonUser.Uid.ToString(CultureInfo.InvariantCulture),
                "--regid=" + daemonUser.Gid.ToString(CultureInfo.InvariantCulture),
                "--clear-groups",
                "--inh-caps=-all,+net_admin,+net_bind_service",
                "--ambient-caps=-all,+net_admin,+net_bind_service",
                "--bounding-set=-all,+net_admin,+net_bind_service",
                "--",
                binary, "run", "--config", configPath,
            ], environment);
            var ready = await daemon.WaitForLineAsync(l => DaemonLogLine.TryParse(l)?.Message.StartsWith("ready", StringComparison.Ordinal) == true, TimeSpan.FromSeconds(60));
            Assert.That(ready, Is.Not.Null, "the packaged daemon did not get ready:\n" + daemon.Transcript());

            // What the kernel says about the running daemon (ip netns exec and setpriv exec, so the pid is the daemon's).
            var status = await File.ReadAllLinesAsync($"/proc/{daemon.ProcessId}/status");
            string Field(string name) => status.Single(l => l.StartsWith(name + ":", StringComparison.Ordinal))[(name.Length + 1)..].Trim();
            // CAP_NET_ADMIN (bit 12) and CAP_NET_BIND_SERVICE (bit 10).
            const string TheTwoCapabilities = "0000000000001400";
            Assert.Multiple(() =>
            {
                Assert.That(Field("Uid").Split('\t', StringSplitOptions.RemoveEmptyEntries).Distinct(), Is.EqualTo(new[] { daemonUser.Uid.ToString(CultureInfo.InvariantCulture) }), "all uids are the daemon user's");
                Assert.That(Field("CapEff"), Is.EqualTo(TheTwoCapabilities), "effective");
                Assert.That(Field("CapPrm"), Is.EqualTo(TheTwoCapabilities), "permitted");
                Assert.That(Field("CapAmb"), Is.EqualTo(TheTwoCapabilities), "ambient");
                Assert.That(Field("CapBnd"), Is.EqualTo(TheTwoCapabilities), "bounding");
            });

            var table = await s.Ns.RunAsync("nft", ["list", "set", "inet", "smtp_interceptor", "exempt_uids"]);
            Assert.That(table.Stdout, Does.Contain(daemonUser.Uid.ToString(CultureInfo.InvariantCulture)), "the daemon's own uid is exempt\n" + table.Describe());

            const string From = "client@client.test";
            const string To = "rcpt@example.test";
            var message = TestMessage.Build(From, To, "packaged-binary");
            var sent = await Clients.SwaksAsync(s.Ns, client, s.Dir, "127.0.0.2:25", From, To, message);
            Assert.That(sent.Succeeded, Is.True, "swaks failed:\n" + sent.Describe() + "\n" + daemon.Transcript() + s.Describe());
            var relayed = s.RequireMx.Messages();
            Assert.That(relayed, Has.Count.EqualTo(1), daemon.Transcript() + s.Describe());
            TraceHeader.AssertPrepended(relayed[0], client, message, "\n" + daemon.Transcript());
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
            while (!TransactionLogged(daemon, client.Uid) && DateTime.UtcNow < deadline)
            {
                await Task.Delay(100);
            }

            Assert.That(TransactionLogged(daemon, client.Uid), Is.True, "a transaction line naming the client's uid\n" + daemon.Transcript());

            await daemon.SignalAsync("TERM");
            Assert.That(await daemon.WaitForExitAsync(TimeSpan.FromSeconds(30)), Is.True, "SIGTERM stops the daemon\n" + daemon.Transcript());
            Assert.That(daemon.ExitCode, Is.Zero, daemon.Transcript());
            await TestContext.Out.WriteLineAsync(daemon.Transcript());
        }
        finally
        {
            await ProcessRunner.RunAsync("userdel", [DaemonUserName], TimeSpan.FromSeconds(30));
            await ProcessRunner.RunAsync("userdel", [ClientUserName], TimeSpan.FromSeconds(30));
        }
    }

    /// <summary>
    /// dpkg in a throwaway root: an overlay of / whose writes go to a tmpfs, inside private mount and network
    /// namespaces (no systemd runs there, so the maintainer scripts skip systemctl as on a chroot). Install →
    /// user, state directory, local MTA exempted in the config; the boot unit's command loads the table as the
    /// package user; reinstall (an upgrade) keeps config and state; remove deletes the table and keeps config,
    /// state and user; purge leaves no configuration, state, user, group or table.
    /// </summary>
    [Test]
    [CancelAfter(600_000)]
    public async Task Install_upgrade_remove_and_purge_in_a_throwaway_root()
    {
        using var dir = new TestDirectory();
        var mtaUser = (await ProcessRunner.RunAsync("getent", ["passwd", "postfix"], TimeSpan.FromSeconds(10))).Succeeded ? "postfix" : null;
        var script = dir.Write("lifecycle.sh", LifecycleScript);
        var run = await ProcessRunner.RunAsync("unshare", ["--mount", "--net", "--fork", "/bin/bash", script, Deb], TimeSpan.FromMinutes(9));
        await TestContext.Out.WriteLineAsync(run.Describe());
        Assert.That(run.Succeeded, Is.True, "the lifecycle script failed:\n" + run.Describe());
        var facts = run.Stdout.Split('\n')
            .Where(l => l.StartsWith("fact ", StringComparison.Ordinal))
            .Select(l => l[5..].Split('=', 2))
            .ToDictionary(p => p[0], p => p.Length > 1 ? p[1] : "", StringComparer.Ordinal);
        string Fact(string key) => facts.TryGetValue(key, out var value) ? value : "(missing)";

        Assert.Multiple(() =>
        {
            Assert.That(Fact("installed.user"), Does.StartWith(PackageUser + ":"), "system user");
            Assert.That(Fact("installed.group"), Does.StartWith(PackageUser + ":"), "system group");
            Assert.That(Fact("installed.shell"), Is.EqualTo("/usr/sbin/nologin"));
            Assert.That(Fact("installed.statedir"), Is.EqualTo($"{PackageUser} {PackageUser} 750"), "state directory owner and mode");
            Assert.That(Fact("installed.binary"), Is.EqualTo("ok"), "/usr/bin/smtp-interceptor version runs");
            Assert.That(Fact("installed.checkconfig"), Is.EqualTo("0"), "the shipped config is valid on the installed system");
            var expectedExempt = mtaUser is null ? "[\"root\", \"smtp-interceptor\"]" : $"[\"root\", \"smtp-interceptor\", \"{mtaUser}\"]";
            Assert.That(Fact("installed.exempt"), Does.Contain(expectedExempt), "the local MTA user is exempted on first install");
            Assert.That(Fact("boot.rules"), Is.EqualTo("0"), "the boot unit's ExecStart loads the table as the package user");
            Assert.That(Fact("boot.table"), Is.EqualTo("yes"));
            Assert.That(Fact("boot.exempt_has_package_user"), Is.EqualTo("yes"), "the boot table exempts the daemon's user");
            Assert.That(Fact("upgrade.exempt"), Is.EqualTo(Fact("installed.exempt")), "an upgrade does not edit the configuration again");
            Assert.That(Fact("upgrade.state"), Is.EqualTo("kept"), "an upgrade keeps the state");
            Assert.That(Fact("removed.table"), Is.EqualTo("no"), "remove deletes the table");
            Assert.That(Fact("removed.binary"), Is.EqualTo("no"));
            Assert.That(Fact("removed.config"), Is.EqualTo("yes"), "remove keeps the configuration");
            Assert.That(Fact("removed.state"), Is.EqualTo("kept"), "remove keeps the state");
            Assert.That(Fact("removed.user"), Is.EqualTo("yes"), "remove keeps the user");
            Assert.That(Fact("purged.config"), Is.EqualTo("no"), "purge removes /etc/smtp-interceptor");
            Assert.That(Fact("purged.state"), Is.EqualTo("no"), "purge removes the state");
            Assert.That(Fact("purged.user"), Is.EqualTo("no"), "purge removes the user");
            Assert.That(Fact("purged.group"), Is.EqualTo("no"), "purge removes the group");
            Assert.That(Fact("purged.table"), Is.EqualTo("no"), "no table after purge");
            Assert.That(Fact("purged.dpkg"), Is.EqualTo("not-installed"));
        });
    }

    private static bool TransactionLogged(BackgroundProcess daemon, uint uid) =>
        daemon.Lines.Select(l => DaemonLogLine.TryParse(l.Text)).OfType<DaemonLogLine>()
            .Where(l => l.Message.StartsWith("transaction", StringComparison.Ordinal))
            .Any(l => new TransactionLog(l).Uid == uid);

    private static async Task<TestUser> CreateSystemUserAsync(string name)
    {
        await ProcessRunner.RunAsync("userdel", [name], TimeSpan.FromSeconds(30));
        await ProcessRunner.RunCheckedAsync("useradd", "--system", "--no-create-home", "--user-group", "--shell", "/usr/sbin/nologin", name);
        var uid = await ProcessRunner.RunCheckedAsync("id", "-u", name);
        var gid = await ProcessRunner.RunCheckedAsync("id", "-g", name);
        return new TestUser(name, uint.Parse(uid.Stdout.Trim(), CultureInfo.InvariantCulture), uint.Parse(gid.Stdout.Trim(), CultureInfo.InvariantCulture));
    }

    /// <summary>
    /// Runs inside `unshare --mount --net --fork`: builds the overlay root, then drives dpkg in it and prints one
    /// "fact KEY=VALUE" line per observation. $1 is the package.
    /// </summary>
    private const string LifecycleScript = """
        set -euo pipefail
        deb="$1"
        base="$(mktemp -d /tmp/smtpi-root.XXXXXX)"
        # The directory is the host's (/tmp is shared): leave nothing behind, also on failure.
        trap 'umount -lR "$base" 2>/dev/null || true; rmdir "$base" 2>/dev/null || true' EXIT
        mount --make-rprivate /
        mount -t tmpfs tmpfs "$base"
        mkdir -p "$base/upper" "$base/work" "$base/root"
        mount -t overlay overlay -o "lowerdir=/,upperdir=$base/upper,workdir=$base/work" "$base/root"
        r="$base/root"
        mount -t proc proc "$r/proc"
        mount --rbind /dev "$r/dev"
        mount -t tmpfs tmpfs "$r/run"
        mount -t tmpfs tmpfs "$r/tmp"
        cp "$deb" "$r/tmp/package.deb"
        in_root() { chroot "$r" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive "$@"; }
        fact() { echo "fact $1=$2"; }
        has_table() { if in_root nft list table inet smtp_interceptor >/dev/null 2>&1; then echo yes; else echo no; fi; }
        exists() { if in_root test -e "$1"; then echo yes; else echo no; fi; }

        echo "--- install"
        in_root dpkg -i /tmp/package.deb
        fact installed.user "$(in_root getent passwd smtp-interceptor || true)"
        fact installed.group "$(in_root getent group smtp-interceptor || true)"
        fact installed.shell "$(in_root getent passwd smtp-interceptor | cut -d: -f7)"
        fact installed.statedir "$(in_root stat -c '%U %G %a' /var/lib/smtp-interceptor)"
        if in_root /usr/bin/smtp-interceptor version >/dev/null; then fact installed.binary ok; else fact installed.binary failed; fi
        set +e
        in_root /usr/bin/smtp-interceptor check-config --config /etc/smtp-interceptor/smtp-interceptor.json
        fact installed.checkconfig "$?"
        set -e
        fact installed.exempt "$(grep '"ExemptUsers"' "$r/etc/smtp-interceptor/smtp-interceptor.json")"

        echo "--- boot: smtp-interceptor-rules.service's ExecStart (the retry, which applies without the first try's mark), as its User= with its capability"
        exec_start="$(sed -n 's/^ExecStart=//p' "$r/lib/systemd/system/smtp-interceptor-rules.service" | tail -1)"
        uid="$(in_root id -u smtp-interceptor)"; gid="$(in_root id -g smtp-interceptor)"
        set +e
        eval "in_root setpriv --reuid=$uid --regid=$gid --clear-groups --inh-caps=-all,+net_admin --ambient-caps=-all,+net_admin --bounding-set=-all,+net_admin $exec_start"
        fact boot.rules "$?"
        set -e
        fact boot.table "$(has_table)"
        if in_root nft list set inet smtp_interceptor exempt_uids | grep -qw "$uid"; then fact boot.exempt_has_package_user yes; else fact boot.exempt_has_package_user no; fi

        echo "--- upgrade (the same package again: prerm upgrade, postinst configure <old version>)"
        in_root touch /var/lib/smtp-interceptor/marker
        in_root dpkg -i /tmp/package.deb
        fact upgrade.exempt "$(grep '"ExemptUsers"' "$r/etc/smtp-interceptor/smtp-interceptor.json")"
        if in_root test -e /var/lib/smtp-interceptor/marker; then fact upgrade.state kept; else fact upgrade.state lost; fi

        echo "--- remove"
        in_root dpkg -r smtp-interceptor
        fact removed.table "$(has_table)"
        fact removed.binary "$(exists /usr/bin/smtp-interceptor)"
        fact removed.config "$(exists /etc/smtp-interceptor/smtp-interceptor.json)"
        if in_root test -e /var/lib/smtp-interceptor/marker; then fact removed.state kept; else fact removed.state lost; fi
        if in_root getent passwd smtp-interceptor >/dev/null; then fact removed.user yes; else fact removed.user no; fi

        echo "--- purge"
        in_root dpkg -P smtp-interceptor
        fact purged.config "$(exists /etc/smtp-interceptor)"
        fact purged.state "$(exists /var/lib/smtp-interceptor)"
        if in_root getent passwd smtp-interceptor >/dev/null; then fact purged.user yes; else fact purged.user no; fi
        if in_root getent group smtp-interceptor >/dev/null; then fact purged.group yes; else fact purged.group no; fi
        fact purged.table "$(has_table)"
        fact purged.dpkg "$(in_root dpkg-query -W -f='${db:Status-Status}' smtp-interceptor 2>/dev/null || echo not-installed)"
        """;

    [GeneratedRegex(@"<Version>([^<]+)</Version>")]
    private static partial Regex VersionElement();

    [GeneratedRegex(@"Overall exposure level for \S+: ([0-9.]+)")]
    private static partial Regex ExposureLine();
}
