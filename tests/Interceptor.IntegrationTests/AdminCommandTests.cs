using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Interceptor.IntegrationTests;

/// <summary>
/// The admin command line against a real daemon over its control socket: who may use it (root, the admin group;
/// nobody is refused even when the socket file is opened up), `status --json` as scripts read it, and block /
/// unblock taking effect in the kernel. The CLI runs as the real `smtp-interceptor` binary under setpriv.
/// </summary>
[TestFixture]
[NonParallelizable]
[CancelAfter(240_000)]
public sealed partial class AdminCommandTests
{
    private const string AdminGroup = "smtpi-admins";
    private const string AdminUserName = "smtpi-carol";
    private const string To = "rcpt@example.test";
    private static readonly TimeSpan CliTimeout = TimeSpan.FromSeconds(90);
    private TestUser? _carol;

    private TestUser Carol => _carol ?? throw new InvalidOperationException("the admin user was not created");

    /// <summary>A group for Control.AdminGroup and a user in it (supplementary, as `usermod -aG` makes admins).</summary>
    [OneTimeSetUp]
    public async Task CreateAdminGroupAndUser()
    {
        Requirements.Ensure();
        await DeleteAdminGroupAndUser();
        await ProcessRunner.RunCheckedAsync("groupadd", "--system", AdminGroup);
        await ProcessRunner.RunCheckedAsync(
            "useradd", "--system", "--no-create-home", "--user-group", "--groups", AdminGroup, "--shell", "/usr/sbin/nologin", AdminUserName);
        var uid = await ProcessRunner.RunCheckedAsync("id", "-u", AdminUserName);
        var gid = await ProcessRunner.RunCheckedAsync("id", "-g", AdminUserName);
        _carol = new TestUser(AdminUserName, uint.Parse(uid.Stdout.Trim(), CultureInfo.InvariantCulture), uint.Parse(gid.Stdout.Trim(), CultureInfo.InvariantCulture));
    }

    [OneTimeTearDown]
    public async Task DeleteAdminGroupAndUser()
    {
        // Not checked: a leftover from a killed run is removed at the next start.
        await ProcessRunner.RunAsync("userdel", [AdminUserName], TimeSpan.FromSeconds(30));
        await ProcessRunner.RunAsync("groupdel", [AdminGroup], TimeSpan.FromSeconds(30));
    }

    [Test]
    public async Task Status_as_root_is_valid_json_and_the_installed_table_matches()
    {
        await using var s = await Scenario.StartAsync(startDaemon: false);
        await using var daemon = await AdminDaemon.StartAsync(s);

        var json = await CliAsync(daemon, null, ["status", "--json"]);
        var table = await CliAsync(daemon, null, ["status"]);

        Assert.That(json.Succeeded, Is.True, json.Describe() + daemon.Transcript());
        var parsed = await ProcessRunner.RunAsync(Requirements.Python, ["-m", "json.tool", s.Dir.Write("status.json", json.Stdout)], TimeSpan.FromSeconds(30));
        Assert.That(parsed.Succeeded, Is.True, "python3 -m json.tool must accept the output:\n" + parsed.Describe());
        using var status = JsonDocument.Parse(json.Stdout);
        var root = status.RootElement;
        Assert.Multiple(() =>
        {
            Assert.That(root.GetProperty("table").GetProperty("matches").GetBoolean(), Is.True, json.Stdout);
            Assert.That(root.GetProperty("table").GetProperty("name").GetString(), Is.EqualTo("smtp_interceptor"));
            Assert.That(root.GetProperty("version").GetString(), Does.Match(@"^\d+\.\d+\.\d+$"));
            Assert.That(root.GetProperty("ownerLookup").GetString(), Is.Not.Empty);
            Assert.That(root.GetProperty("uptimeSeconds").GetInt64(), Is.GreaterThanOrEqualTo(0));
            Assert.That(root.GetProperty("store").GetProperty("path").GetString(), Does.StartWith(s.Dir.Path));
            Assert.That(root.GetProperty("users").ValueKind, Is.EqualTo(JsonValueKind.Array));
            Assert.That(table.Succeeded, Is.True, table.Describe());
            Assert.That(table.Stdout, Does.Contain("table: inet smtp_interceptor matches the configuration"), table.Stdout);
        });
    }

    [Test]
    public async Task Nobody_is_refused_even_through_an_opened_socket_and_an_admin_group_member_is_admitted()
    {
        await using var s = await Scenario.StartAsync(startDaemon: false);
        await using var daemon = await AdminDaemon.StartAsync(s);
        var denial = $"permission denied: only root and members of group {AdminGroup} may use the control socket";

        // The socket file (0660, group smtpi-admins) stops nobody at connect().
        var byFile = await CliAsync(daemon, TestUsers.Nobody, ["status"]);

        // Opened up by a careless chmod, the daemon's own check (SO_PEERCRED) still refuses, and logs who tried.
        File.SetUnixFileMode(
            daemon.SocketPath,
            UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.OtherRead | UnixFileMode.OtherWrite);
        var byDaemon = await CliAsync(daemon, TestUsers.Nobody, ["block", TestUsers.Alice.Name, "--reason", "not allowed"]);
        var logged = await daemon.Process.WaitForLineAsync(l => l.Contains($"uid={TestUsers.Nobody.Uid} gid=", StringComparison.Ordinal), TimeSpan.FromSeconds(5));

        // A member of the admin group, with the groups a login gives it.
        var asAdmin = await CliAsync(daemon, Carol, ["status", "--json"], initGroups: true);

        Assert.Multiple(() =>
        {
            Assert.That(byFile.ExitCode, Is.EqualTo(3), byFile.Describe());
            Assert.That(byFile.Stderr, Does.Contain(denial), byFile.Describe());
            Assert.That(byDaemon.ExitCode, Is.EqualTo(3), byDaemon.Describe());
            Assert.That(byDaemon.Stderr, Does.Contain(denial), byDaemon.Describe());
            Assert.That(logged?.Text, Does.Contain("refused"), daemon.Transcript());
            Assert.That(byDaemon.Stdout, Is.Empty);
            Assert.That(asAdmin.Succeeded, Is.True, asAdmin.Describe() + daemon.Transcript());
            Assert.That(() => JsonDocument.Parse(asAdmin.Stdout).Dispose(), Throws.Nothing, asAdmin.Stdout);
        });
    }

    [Test]
    public async Task A_customer_taking_the_admin_groups_gid_from_her_sub_gid_range_is_refused()
    {
        // The admin group's gid inside alice's /etc/subgid range (a range over a system group: a misconfiguration, but
        // newgidmap allows it): in a user namespace she becomes that gid, the socket file's group permission lets her
        // connect, and the kernel reports the admin gid for her. Before, that gid alone admitted her.
        Requirements.Require("newgidmap");
        var adminGid = (await ProcessRunner.RunCheckedAsync("getent", "group", AdminGroup)).Stdout.Split(':')[2];
        using var line = await SubordinateUidLine.AddAsync($"{TestUsers.Alice.Name}:{adminGid}:1", SubordinateUidLine.SubGidPath);
        await using var s = await Scenario.StartAsync(startDaemon: false);
        await using var daemon = await AdminDaemon.StartAsync(s);
        var alice = TestUsers.Alice.Uid.ToString(CultureInfo.InvariantCulture);

        var result = await ProcessRunner.RunAsync(
            "setpriv",
            [
                "--reuid=" + alice, "--regid=" + alice, "--clear-groups",
                "unshare", "--user", $"--map-users={alice},{alice},1", $"--map-groups={adminGid},0,1", "--setgid", "0",
                DaemonProcess.DotnetHost, daemon.Dir.DaemonAssemblyForOtherUsers, "status", "--config", daemon.ConfigPath,
            ],
            CliTimeout,
            cleanEnvironment: true);
        var logged = await daemon.Process.WaitForLineAsync(l => l.Contains($"uid={alice} gid={adminGid}", StringComparison.Ordinal), TimeSpan.FromSeconds(5));

        Assert.That(logged?.Text ?? "(no such line)", Does.Contain("refused"), "the daemon saw her with the admin group's gid\n" + result.Describe() + daemon.Transcript());
        Assert.That(result.ExitCode, Is.EqualTo(3), result.Describe());
        Assert.That(result.Stderr, Does.Contain($"permission denied: only root and members of group {AdminGroup} may use the control socket"), result.Describe());
    }

    [Test]
    public async Task Block_makes_the_kernel_refuse_her_and_unblock_lets_mail_flow_again_at_once()
    {
        await using var s = await Scenario.StartAsync(startDaemon: false);
        await using var daemon = await AdminDaemon.StartAsync(s);
        var alice = TestUsers.Alice;
        var before = await Clients.SwaksAsync(s.Ns, alice, s.Dir, "127.0.0.2:25", "alice@client.test", To, TestMessage.Small("alice@client.test", To, "before-block"));
        Assert.That(before.Succeeded, Is.True, before.Describe() + daemon.Transcript());

        var block = await CliAsync(daemon, null, ["block", alice.Name, "--reason", "integration test"]);
        var refusedPackets = SuspendedRuleCounter(await s.Ns.RunAsync("nft", ["list", "table", "inet", "smtp_interceptor"]));
        var mxConnections = s.RequireMx.ConnectionCount;
        var blocked = await ConnectAsync(s, alice);
        var afterRefusal = SuspendedRuleCounter(await s.Ns.RunAsync("nft", ["list", "table", "inet", "smtp_interceptor"]));
        var status = await CliAsync(daemon, null, ["status", "--json"]);

        Assert.Multiple(() =>
        {
            Assert.That(block.Succeeded, Is.True, block.Describe() + daemon.Transcript());
            Assert.That(block.Stdout.Trim(), Is.EqualTo($"{alice.Name} (uid {alice.Uid}) suspended: integration test"));
            Assert.That(blocked.Stdout + blocked.Stderr, Does.Contain("Connection refused"), blocked.Describe());
            Assert.That(afterRefusal, Is.GreaterThan(refusedPackets), "the suspended rule's counter counts the refusal");
            Assert.That(s.RequireMx.ConnectionCount, Is.EqualTo(mxConnections), "nothing reached the MX");
            using var json = JsonDocument.Parse(status.Stdout);
            Assert.That(json.RootElement.GetProperty("table").GetProperty("matches").GetBoolean(), Is.True, status.Stdout);
            Assert.That(json.RootElement.GetProperty("suspended")[0].GetProperty("uid").GetUInt32(), Is.EqualTo(alice.Uid));
        });

        var unblock = await CliAsync(daemon, null, ["unblock", alice.Name]);
        var unblockedAt = DateTime.UtcNow;
        var firstReplyWithin = await FirstConnectSecondsAsync(s, alice, unblockedAt);
        var after = await Clients.SwaksAsync(s.Ns, alice, s.Dir, "127.0.0.2:25", "alice@client.test", To, TestMessage.Small("alice@client.test", To, "after-unblock"));
        var again = await CliAsync(daemon, null, ["unblock", alice.Name]);
        var log = await CliAsync(daemon, null, ["log", "--json", "--user", alice.Name]);

        Assert.Multiple(() =>
        {
            Assert.That(unblock.Stdout.Trim(), Is.EqualTo($"{alice.Name} (uid {alice.Uid}) unsuspended: port 25 is intercepted and relayed again"), unblock.Describe());
            Assert.That(after.Succeeded, Is.True, "the first attempt after unblock is relayed\n" + after.Describe() + daemon.Transcript());
            Assert.That(firstReplyWithin, Is.LessThan(1.0), "mail flows within a second of unblock");
            Assert.That(again.Stdout.Trim(), Is.EqualTo($"{alice.Name} (uid {alice.Uid}) was not suspended"));
            Assert.That(log.Succeeded, Is.True, log.Describe());
        });
        using var transactions = JsonDocument.Parse(log.Stdout);
        var entries = transactions.RootElement.GetProperty("transactions").EnumerateArray().ToList();
        Assert.Multiple(() =>
        {
            Assert.That(entries, Has.Count.GreaterThanOrEqualTo(2), log.Stdout);
            Assert.That(entries.Select(e => e.GetProperty("user").GetString()), Has.All.EqualTo(alice.Name));
            Assert.That(entries.Select(e => e.GetProperty("outcome").GetString()), Has.All.EqualTo("delivered"), log.Stdout);
            Assert.That(entries[0].GetProperty("destination").GetString(), Is.EqualTo("127.0.0.2:25"));
            Assert.That(entries[0].GetProperty("time").GetDateTimeOffset(), Is.GreaterThanOrEqualTo(entries[^1].GetProperty("time").GetDateTimeOffset()), "newest first");
        });
    }

    /// <summary>Runs the CLI as <paramref name="user"/> (null: root), outside the namespace: a Unix socket is a file.</summary>
    /// <param name="initGroups">The groups a login session gets from the group database; otherwise none at all.</param>
    private static Task<ProcessResult> CliAsync(AdminDaemon daemon, TestUser? user, string[] arguments, bool initGroups = false)
    {
        if (user is null)
        {
            return ProcessRunner.RunAsync(DaemonProcess.DotnetHost, [DaemonProcess.AssemblyPath, .. arguments, "--config", daemon.ConfigPath], CliTimeout, cleanEnvironment: true);
        }

        // Another user may not reach the build output (a checkout under /root): it runs the copy in the test directory.
        List<string> command = [DaemonProcess.DotnetHost, daemon.Dir.DaemonAssemblyForOtherUsers, .. arguments, "--config", daemon.ConfigPath];

        return ProcessRunner.RunAsync(
            "setpriv",
            [
                "--reuid=" + user.Uid.ToString(CultureInfo.InvariantCulture),
                "--regid=" + user.Gid.ToString(CultureInfo.InvariantCulture),
                initGroups ? "--init-groups" : "--clear-groups",
                .. command,
            ],
            CliTimeout,
            cleanEnvironment: true);
    }

    /// <summary>A bare TCP connect to the fake MX as <paramref name="user"/>; what the kernel says is in the output.</summary>
    private static Task<ProcessResult> ConnectAsync(Scenario s, TestUser user) =>
        s.Ns.RunAsUserAsync(user, Requirements.Python, ["-c", "import socket; socket.create_connection(('127.0.0.2', 25), 5).close(); print('connected')"], TimeSpan.FromSeconds(30));

    /// <summary>Seconds from <paramref name="since"/> until a fresh connection of the user gets its greeting.</summary>
    private static async Task<double> FirstConnectSecondsAsync(Scenario s, TestUser user, DateTime since)
    {
        var result = await s.Ns.RunAsUserAsync(
            user,
            Requirements.Python,
            ["-c", "import socket,time; c=socket.create_connection(('127.0.0.2', 25), 5); print(c.recv(512).decode()[:3]); print(time.time())"],
            TimeSpan.FromSeconds(30));
        var lines = result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines, Has.Length.EqualTo(2).And.Some.EqualTo("220"), result.Describe());
        var at = DateTime.UnixEpoch.AddSeconds(double.Parse(lines[1], CultureInfo.InvariantCulture));
        return (at - since).TotalSeconds;
    }

    /// <summary>The packets counted by the rule that refuses suspended users.</summary>
    private static long SuspendedRuleCounter(ProcessResult listing)
    {
        Assert.That(listing.Succeeded, Is.True, listing.Describe());
        var rule = listing.Stdout.Split('\n').SingleOrDefault(l => l.Contains("@suspended_uids", StringComparison.Ordinal) && l.Contains("reject", StringComparison.Ordinal));
        Assert.That(rule, Is.Not.Null, "no suspended-users rule in:\n" + listing.Stdout);
        var match = CounterPattern().Match(rule!);
        Assert.That(match.Success, Is.True, rule);
        return long.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
    }

    [GeneratedRegex(@"counter packets (\d+)")]
    private static partial Regex CounterPattern();

    /// <summary>
    /// The real daemon with Control.AdminGroup set, which the shared DaemonConfig does not write: the config is its
    /// JSON plus that one key. Ready once it logged "ready" and its control socket exists.
    /// </summary>
    private sealed class AdminDaemon : IAsyncDisposable
    {
        private AdminDaemon(BackgroundProcess process, TestDirectory dir, string configPath, string socketPath)
        {
            Dir = dir;
            Process = process;
            ConfigPath = configPath;
            SocketPath = socketPath;
        }

        public BackgroundProcess Process { get; }
        public TestDirectory Dir { get; }
        public string ConfigPath { get; }
        public string SocketPath { get; }

        public static async Task<AdminDaemon> StartAsync(Scenario s)
        {
            var json = JsonNode.Parse(new DaemonConfig().ToJson(s.Dir.Subdirectory("daemon")))!.AsObject();
            json["Control"]!["AdminGroup"] = AdminGroup;

            // One upstream connection per session, so "nothing reached the MX" can be counted in connections.
            json["Relay"]!["ReuseConnections"] = false;
            var socketPath = json["Control"]!["SocketPath"]!.GetValue<string>();
            var configPath = s.Dir.Write("admin-config.json", json.ToJsonString());
            var clean = Environment.GetEnvironmentVariables().Keys.Cast<string>()
                .Where(k => k.StartsWith("SMTPI_", StringComparison.Ordinal))
                .ToDictionary(k => k, _ => (string?)null);
            var process = s.Ns.StartBackground("daemon", DaemonProcess.DotnetHost, [DaemonProcess.AssemblyPath, "run", "--config", configPath], clean);
            var daemon = new AdminDaemon(process, s.Dir, configPath, socketPath);
            var ready = await process.WaitForLineAsync(l => DaemonLogLine.TryParse(l)?.Message.StartsWith("ready", StringComparison.Ordinal) == true, TimeSpan.FromSeconds(45));
            for (var i = 0; i < 100 && ready is not null && !File.Exists(socketPath); i++)
            {
                await Task.Delay(100);
            }

            if (ready is null || !File.Exists(socketPath))
            {
                var transcript = process.Transcript();
                await daemon.DisposeAsync();
                Assert.Fail($"daemon not ready with a control socket at {socketPath}:\n{transcript}");
            }

            return daemon;
        }

        public string Transcript() => "\n" + Process.Transcript();

        public async ValueTask DisposeAsync()
        {
            await TestContext.Out.WriteLineAsync(Process.Transcript());
            await Process.DisposeAsync();
        }
    }
}
