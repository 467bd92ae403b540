using System.Globalization;
using System.Text.RegularExpressions;
using static Interceptor.IntegrationTests.PolicyTestSupport;

namespace Interceptor.IntegrationTests;

/// <summary>
/// Subordinate UIDs (issue 12.4): a customer with a range in /etc/subuid becomes any uid of it through the setuid
/// newuidmap (`unshare --map-users`). Each such uid must count as the owner: her quota, her suspension (in the kernel
/// too), her name in the trace header; and a uid that belongs to nobody at all is refused at the greeting.
/// The range given to smtpi-alice here is far from anything useradd hands out, and exactly that line is removed
/// afterwards (the file is host-wide).
/// </summary>
[TestFixture]
[NonParallelizable]
[CancelAfter(180_000)]
public sealed partial class SubordinateUidTests
{
    private const uint RangeStart = 1_900_000_000;
    private const uint RangeCount = 65_536;
    private const uint SubUid = RangeStart + 5;
    private const uint OtherSubUid = RangeStart + 6;

    // Neither in passwd nor in any range of /etc/subuid: root can still become it (setpriv needs no account).
    private const uint Orphan = RangeStart + RangeCount + 100_123;

    private SubordinateUidLine? _line;

    [OneTimeSetUp]
    public async Task GiveAliceARange()
    {
        Requirements.Require("newuidmap");
        _line = await SubordinateUidLine.AddAsync($"{TestUsers.Alice.Name}:{RangeStart}:{RangeCount}");
    }

    [OneTimeTearDown]
    public void RemoveAlicesRange() => _line?.Dispose();

    [Test]
    public async Task Her_sub_uid_is_attributed_to_her_and_shares_her_hourly_quota()
    {
        await using var s = await Scenario.StartAsync(config: Config(("Limits.Users.smtpi-alice.MessagesPerHour", 1)));
        var alice = TestUsers.Alice;
        string Context() => "\n" + s.RequireDaemon.Transcript() + s.Describe();

        var fromSubUid = await SendAsSubUidAsync(s, SubUid, "from-sub-uid");
        AssertDelivered(fromSubUid, Context());
        var relayed = s.RequireMx.Messages().Single();
        var transaction = (await s.RequireDaemon.WaitForTransactionsAsync(1, TimeSpan.FromSeconds(5))).Single();
        var herOwn = await SendAsync(s, alice, "from-alice");
        var secondSubUid = await SendAsSubUidAsync(s, OtherSubUid, "from-another-sub-uid");

        Assert.Multiple(() =>
        {
            Assert.That(relayed.FirstLine, Does.Match(HeaderFor(alice.Uid, alice.Name, SubUid)),
                "the trace header names the owner and the real sub-UID" + Context());
            Assert.That(transaction.Uid, Is.EqualTo(alice.Uid), "the transaction log line's uid is the owner's\n" + transaction);
            Assert.That(transaction.User, Is.EqualTo(alice.Name), "the transaction log line's user is the owner\n" + transaction);
            Assert.That(transaction.Line.StateString("SubUid"), Is.EqualTo(SubUid.ToString(CultureInfo.InvariantCulture)),
                "the transaction log line names the sub-UID\n" + transaction);
            Assert.That(ReplyLine(herOwn, "MAIL"), Does.StartWith("451 4.7.1 hourly message quota for user smtpi-alice exhausted (1/1)"),
                "the sub-UID's message used alice's one message an hour\n" + herOwn.Describe());
            Assert.That(ReplyLine(secondSubUid, "MAIL"), Does.StartWith("451 4.7.1 hourly message quota for user smtpi-alice exhausted (1/1)"),
                "another sub-UID of hers has no fresh quota either\n" + secondSubUid.Describe());
            Assert.That(s.RequireMx.Messages(), Has.Count.EqualTo(1), "only the first message left" + Context());
        });
    }

    [Test]
    public async Task Blocking_her_makes_the_kernel_refuse_her_sub_uids_and_unblocking_lets_them_in()
    {
        await using var s = await Scenario.StartAsync();
        var daemon = s.RequireDaemon;
        var alice = TestUsers.Alice;
        string Context() => "\n" + daemon.Transcript() + s.Describe();

        var before = await ProbeAsSubUidAsync(s, SubUid);
        Assert.That(before.Greeting, Does.StartWith("220 "), "before the block her sub-UID is intercepted as usual\n" + before);

        var block = await AdminAsync(s, "block", alice.Name, "--reason", "sub-uid test");
        Assert.That(block.Succeeded, Is.True, block.Describe());
        var table = await NftTable.ListAsync(s.Ns, "table", "inet", NftTable.Name);
        var mxConnectionsBefore = s.RequireMx.ConnectionCount;
        var logLinesBefore = daemon.LogLines().Count;
        var probe = await ProbeAsSubUidAsync(s, SubUid);
        var probe6 = await ProbeAsSubUidAsync(s, OtherSubUid, NetworkNamespace.MxAddress6);
        var counter = await NftTable.RuleCounterAsync(s.Ns, SubUidRule);
        var logLinesAfter = daemon.LogLines().Count;
        var mxConnectionsAfter = s.RequireMx.ConnectionCount;
        var bob = await SendAsync(s, TestUsers.Bob, "bob-meanwhile");

        Assert.Multiple(() =>
        {
            Assert.That(probe.Refused, Is.True, "the kernel refuses her sub-UID (TCP reset)\n" + probe + "\n" + table);
            Assert.That(probe6.Refused, Is.True, "over IPv6 too\n" + probe6);
            Assert.That(counter, Is.GreaterThanOrEqualTo(2), "the sub-UID rule counted both attempts\n" + table);
            Assert.That(table, Does.Contain($"{RangeStart}-{RangeStart + RangeCount - 1}"), "her range is in the kernel's set");
            Assert.That(mxConnectionsAfter, Is.EqualTo(mxConnectionsBefore), "nothing reached the MX" + Context());
            Assert.That(logLinesAfter, Is.EqualTo(logLinesBefore), "nothing reached the daemon" + Context());
            Assert.That(bob.Reply("BODY")?.Code, Is.EqualTo(250), "bob is unaffected\n" + bob.Describe());
        });

        var unblock = await AdminAsync(s, "unblock", alice.Name);
        var after = await ProbeAsSubUidAsync(s, SubUid);
        Assert.Multiple(() =>
        {
            Assert.That(unblock.Succeeded, Is.True, unblock.Describe());
            Assert.That(after.Greeting, Does.StartWith("220 "), "after unblock her sub-UID is intercepted again\n" + after);
        });
    }

    [Test]
    public async Task A_uid_with_no_account_and_no_owner_is_refused_at_the_greeting_and_logged_once()
    {
        await using var s = await Scenario.StartAsync();
        var orphan = new TestUser("orphan", Orphan, 65534);
        var probes = new List<ProbeResult>();
        for (var i = 0; i < 3; i++)
        {
            probes.Add(await TcpProbe.ConnectAsync(s.Ns, orphan, NetworkNamespace.MxAddress4, 25));
        }

        var uid = Orphan.ToString(CultureInfo.InvariantCulture);
        var lines = s.RequireDaemon.LogLines().Where(l => l.Raw.Contains(uid, StringComparison.Ordinal)).ToList();
        Assert.Multiple(() =>
        {
            foreach (var probe in probes)
            {
                Assert.That(probe.Greeting, Does.StartWith($"421 4.7.1 uid {uid} has no account on this host and is not a subordinate uid of one"), probe.ToString());
            }

            Assert.That(s.RequireMx.ConnectionCount, Is.Zero, "nothing was relayed");
            Assert.That(lines, Has.Count.EqualTo(1), "one log line for the uid, not one per connection\n" + string.Join("\n", lines.Select(l => l.Raw)));
        });
    }

    [Test]
    public async Task Her_sub_uid_connecting_to_the_listener_itself_is_refused_and_logged_against_her_naming_the_sub_uid()
    {
        // Keyed by the raw uid, a thousand sub-UIDs of one customer would fill the refusal log's keys for a cause and
        // leave everyone else's refusals unnamed; charged to her, they take one key.
        await using var s = await Scenario.StartAsync();
        var alice = TestUsers.Alice;
        var direct = await RunAsSubUidAsync(s, SubUid, Requirements.Python,
        [
            "-I", "-c",
            $"import socket; c = socket.create_connection(('127.0.0.1', {new DaemonConfig().ListenPort}), timeout=10); print(c.makefile('rb').readline().decode().strip())",
        ]);

        bool IsTheRefusal(DaemonLogLine l) => l.StateString("Cause") == "not_redirected";
        await Poll.UntilAsync(() => s.RequireDaemon.LogLines().Any(IsTheRefusal), TimeSpan.FromSeconds(10));
        var refusal = s.RequireDaemon.LogLines().FirstOrDefault(IsTheRefusal);
        Assert.That(refusal, Is.Not.Null, "no not_redirected refusal logged\n" + s.RequireDaemon.Transcript());
        Assert.Multiple(() =>
        {
            Assert.That(direct.Stdout, Does.StartWith("421 4.3.0 this connection was not redirected"), direct.Describe() + s.Describe());
            Assert.That(refusal!.StateString("Uid"), Is.EqualTo(alice.Uid.ToString(CultureInfo.InvariantCulture)), "charged to her, not to the sub-UID\n" + refusal.Raw);
            Assert.That(refusal!.StateString("User"), Is.EqualTo(alice.Name), refusal.Raw);
            Assert.That(refusal!.Message, Does.Contain($"; sent as sub-UID {SubUid};"), "the sub-UID is named in the reason\n" + refusal.Raw);
        });
    }

    [Test]
    public async Task With_UnknownUids_Relay_such_a_uid_is_relayed_under_its_number()
    {
        await using var s = await Scenario.StartAsync(config: Config(("Attribution.UnknownUids", "Relay")));
        var orphan = new TestUser("orphan", Orphan, 65534);
        var result = await SendAsync(s, orphan, "orphan-relayed");
        AssertDelivered(result, "\n" + s.RequireDaemon.Transcript());
        Assert.That(s.RequireMx.Messages().Single().FirstLine, Does.StartWith($"{TraceHeader.Name}: uid={Orphan} user=#{Orphan};"));
    }

    /// <summary>
    /// An admin verb of the real binary, as root, without the SMTPI_* variables of the test run: the CLI reads
    /// SMTPI_ variables as configuration keys and refuses SMTPI_KEEP_TEST_USERS as an unknown one.
    /// </summary>
    private static Task<ProcessResult> AdminAsync(Scenario s, params string[] arguments) =>
        s.Ns.RunAsync("env", ["-u", "SMTPI_KEEP_TEST_USERS", DaemonProcess.DotnetHost, DaemonProcess.AssemblyPath, .. arguments, "--config", s.RequireDaemon.ConfigPath],
            TimeSpan.FromSeconds(60));

    /// <summary>The comment that starts the filter rule refusing the sub-UIDs of suspended users.</summary>
    private const string SubUidRule = "Sub-UIDs of suspended users";

    private static Regex HeaderFor(uint uid, string user, uint subUid) =>
        new($"^{TraceHeader.Name}: uid={uid} user={Regex.Escape(user)}; host=[^;]+; id=[^;]+; subuid={subUid}$");

    /// <summary>
    /// Runs <paramref name="program"/> as alice inside a new user namespace whose root is <paramref name="subUid"/>
    /// outside: unshare asks the setuid newuidmap for the mapping (allowed by her line in /etc/subuid), then becomes
    /// that uid, so the kernel (nft's skuid, sock_diag) sees the socket as owned by the sub-UID.
    /// </summary>
    private static Task<ProcessResult> RunAsSubUidAsync(Scenario s, uint subUid, string program, IEnumerable<string> arguments) =>
        s.Ns.RunAsUserAsync(
            TestUsers.Alice,
            "unshare",
            ["--user", $"--map-users={subUid},0,1", "--setuid", "0", Requirements.Which(program) ?? program, .. arguments],
            TimeSpan.FromSeconds(60));

    private static async Task<DialogResult> SendAsSubUidAsync(Scenario s, uint subUid, string marker)
    {
        const string from = "sub@client.test";
        var body = Clients.WriteStuffedBody(s.Dir, TestMessage.Small(from, To, marker));
        var dialogFile = s.Dir.Write("dialog-" + Guid.NewGuid().ToString("N")[..8] + ".json", SmtpDialog.Transaction(Mx, from, [To], body, 20).ToJson());
        var process = await RunAsSubUidAsync(s, subUid, Requirements.Python, ["-I", s.Dir.PathOf("smtp_dialog.py"), dialogFile]);
        return DialogResult.Parse(process);
    }

    private static async Task<ProbeResult> ProbeAsSubUidAsync(Scenario s, uint subUid, string host = NetworkNamespace.MxAddress4)
    {
        // The same bare connect as TcpProbe, run through the sub-UID's namespace.
        var process = await RunAsSubUidAsync(s, subUid, Requirements.Python, ["-I", "-c", TcpProbe.Script, host, "25"]);
        return TcpProbe.Parse(process);
    }
}

/// <summary>
/// One line added to the host's /etc/subuid (or /etc/subgid) for the duration of a fixture; disposing removes exactly
/// that line (other lines, added meanwhile by anyone, stay). The file is replaced by rename, as shadow's tools do.
/// </summary>
public sealed class SubordinateUidLine : IDisposable
{
    public const string SubGidPath = "/etc/subgid";
    private const string SubUidPath = "/etc/subuid";
    private static readonly SemaphoreSlim Lock = new(1, 1);
    private readonly string _line;
    private readonly string _path;

    private SubordinateUidLine(string line, string path)
    {
        _line = line;
        _path = path;
    }

    public static async Task<SubordinateUidLine> AddAsync(string line, string path = SubUidPath)
    {
        // Every running daemon follows /etc/subuid (a rule per owner of sub-UIDs), so a line added beside another
        // fixture's daemon changes that daemon's table under its test's feet. No daemon reads /etc/subgid.
        Assert.That(path != SubUidPath || FixtureRunsAlone(), Is.True,
            $"{TestContext.CurrentContext.Test.ClassName} edits {path}: mark the fixture [NonParallelizable]");
        await Lock.WaitAsync();
        try
        {
            var lines = File.Exists(path) ? File.ReadAllLines(path).ToList() : [];
            Assert.That(lines, Does.Not.Contain(line), $"{path} already holds '{line}' (a run killed earlier?); remove it by hand");
            lines.Add(line);
            Replace(path, lines);
            return new SubordinateUidLine(line, path);
        }
        finally
        {
            Lock.Release();
        }
    }

    public void Dispose()
    {
        Lock.Wait();
        try
        {
            var lines = File.ReadAllLines(_path).ToList();
            lines.Remove(_line);
            Replace(_path, lines);
        }
        finally
        {
            Lock.Release();
        }
    }

    private static bool FixtureRunsAlone()
    {
        for (var test = NUnit.Framework.Internal.TestExecutionContext.CurrentContext.CurrentTest; test is not null; test = test.Parent as NUnit.Framework.Internal.Test)
        {
            if (test is NUnit.Framework.Internal.TestFixture)
            {
                // [NonParallelizable] sets exactly this (ParallelScope.None is not a flag to test for).
                return test.Properties.Get(NUnit.Framework.Internal.PropertyNames.ParallelScope) is ParallelScope.None;
            }
        }

        return false;
    }

    private static void Replace(string path, List<string> lines)
    {
        var temporary = path + ".smtpi-test";
        File.WriteAllText(temporary, lines.Count == 0 ? "" : string.Join("\n", lines) + "\n");
        File.SetUnixFileMode(temporary, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        File.Move(temporary, path, overwrite: true);
    }
}
