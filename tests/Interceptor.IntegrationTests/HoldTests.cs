using System.Text.Json;
using static Interceptor.IntegrationTests.PolicyTestSupport;

namespace Interceptor.IntegrationTests;

/// <summary>
/// Hold-and-release with the real daemon and the fake MX. The holding stage is Suspension.Action=Hold (no scanner
/// needed): alice is suspended automatically by one per-message recipient refusal (Suspension.RefusalLimit=1,
/// RecipientsPerMessage=1), then each of her messages is held, listed by `held`, released through the real upstream code
/// to the fake MX exactly once with one trace header, or deleted; held messages survive SIGKILL; a release the MX
/// refuses for good ends failed with the alert.
/// </summary>
[TestFixture]
[CancelAfter(180_000)]
public sealed class HoldTests
{
    private const string HeldPrefix = "250 2.0.0 held for review as ";

    private static DaemonConfig HoldConfig(string alertFile) => Config(
        ("Suspension.Action", "Hold"),
        ("Suspension.RefusalLimit", 1),
        ("Limits.Default.RecipientsPerMessage", 1),
        ("Alerts.Command", AlertCommand(alertFile)));

    /// <summary>Two recipients for a one-recipient cap: one refusal, which suspends her (her mail is held from now on).</summary>
    private static async Task SuspendAliceAsync(Scenario s, DaemonProcess daemon)
    {
        await SendAsync(s, TestUsers.Alice, "trigger", [To, "second@example.test"]);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (!daemon.LogLines().Any(l => l.Raw.Contains("suspended", StringComparison.Ordinal) && l.Raw.Contains(TestUsers.Alice.Name, StringComparison.Ordinal) && l.LogLevel is "Warning" or "Error")
            && DateTime.UtcNow < deadline)
        {
            await Task.Delay(100);
        }
    }

    private static async Task<string> HoldOneAsync(Scenario s, string marker, DaemonProcess daemon)
    {
        var dialog = await SendAsync(s, TestUsers.Alice, marker);
        var reply = ReplyLine(dialog, "BODY");
        Assert.That(reply, Does.StartWith(HeldPrefix), dialog.Describe() + daemon.Transcript());
        return reply[HeldPrefix.Length..].Trim();
    }

    private static async Task<JsonElement> CliJsonAsync(Scenario s, DaemonProcess daemon, params string[] arguments)
    {
        var result = await CliAsync(s.Ns, daemon, [.. arguments, "--json"]);
        Assert.That(result.Succeeded, Is.True, result.Describe());
        return JsonDocument.Parse(result.Stdout).RootElement.Clone();
    }

    private static async Task<int> MessagesLastHourAsync(Scenario s, DaemonProcess daemon) =>
        (await CliJsonAsync(s, daemon, "limits", TestUsers.Alice.Name)).GetProperty("user").GetProperty("usage").GetProperty("messagesLastHour").GetInt32();

    private static JsonElement? Listed(JsonElement held, string id) =>
        held.GetProperty("messages").EnumerateArray().Cast<JsonElement?>().FirstOrDefault(m => m!.Value.GetProperty("id").GetString() == id);

    private static async Task<IReadOnlyList<RecordedMessage>> WaitForMxAsync(Scenario s, string marker, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var found = s.RequireMx.Messages().Where(m => m.Text.Contains(marker, StringComparison.Ordinal)).ToList();
            if (found.Count > 0 || DateTime.UtcNow >= deadline)
            {
                return found;
            }

            await Task.Delay(100);
        }
    }

    private static async Task<string> WaitForStateAsync(Scenario s, DaemonProcess daemon, string id, string state, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var now = Listed(await CliJsonAsync(s, daemon, "held"), id)?.GetProperty("state").GetString() ?? "absent";
            if (now == state || DateTime.UtcNow >= deadline)
            {
                return now;
            }

            await Task.Delay(200);
        }
    }

    [Test]
    public async Task A_suspended_users_message_is_held_listed_released_to_the_mx_exactly_once_and_another_deleted()
    {
        await using var s = await Scenario.StartAsync(startDaemon: false);
        await using var daemon = await DaemonProcess.StartAsync(s.Ns, s.Dir, HoldConfig(s.Dir.PathOf("alert.env")));
        string Context() => "\n" + daemon.Transcript() + s.Describe();
        await SuspendAliceAsync(s, daemon);
        var usageBefore = await MessagesLastHourAsync(s, daemon);

        var kept = await HoldOneAsync(s, "held-one", daemon);
        var dropped = await HoldOneAsync(s, "held-two", daemon);
        var bob = await SendAsync(s, TestUsers.Bob, "bob-meanwhile");
        await Assert.MultipleAsync(async () =>
        {
            Assert.That(await NftTable.SuspendedUidsAsync(s.Ns), Does.Not.Contain(TestUsers.Alice.Uid), "a held user is not refused by the kernel" + Context());
            Assert.That(s.RequireMx.Messages().Where(m => m.Text.Contains("held-", StringComparison.Ordinal)), Is.Empty, "nothing held reached the MX" + Context());
            AssertDelivered(bob, Context());
        });

        var held = await CliJsonAsync(s, daemon, "held", "--user", TestUsers.Alice.Name);
        var listed = Listed(held, kept);
        Assert.That(listed, Is.Not.Null, held.ToString());
        Assert.That(Listed(held, dropped), Is.Not.Null, held.ToString());
        Assert.Multiple(() =>
        {
            Assert.That(listed!.Value.GetProperty("state").GetString(), Is.EqualTo("held"));
            Assert.That(listed.Value.GetProperty("user").GetString(), Is.EqualTo(TestUsers.Alice.Name));
            Assert.That(listed.Value.GetProperty("stage").GetString(), Is.EqualTo("suspended-user"));
            Assert.That(listed.Value.GetProperty("originalDestination").GetString(), Is.EqualTo(Mx));
        });
        var text = await CliAsync(s.Ns, daemon, "held");
        Assert.That(text.Stdout, Does.Contain(kept).And.Contain("is suspended"), text.Describe());

        // The quotas count a held message when it is held (so held mail is bounded by them), and not again at its release.
        var usageHeld = await MessagesLastHourAsync(s, daemon);
        var aliceRow = (await CliJsonAsync(s, daemon, "users")).GetProperty("users").EnumerateArray()
            .Single(u => u.GetProperty("user").GetString() == TestUsers.Alice.Name);
        var heldListed = held.GetProperty("messages").EnumerateArray().Count(m => m.GetProperty("state").GetString() == "held");
        Assert.That(heldListed, Is.GreaterThanOrEqualTo(2), held.ToString());
        Assert.That(aliceRow.GetProperty("held").GetInt64(), Is.EqualTo(heldListed), "`users` shows what `held` lists, in a column of their own\n" + aliceRow + "\n" + held);
        var release = await CliAsync(s.Ns, daemon, "release", kept);
        Assert.That(release.Succeeded, Is.True, release.Describe());
        var received = await WaitForMxAsync(s, "held-one", TimeSpan.FromSeconds(20));
        await Task.Delay(1500);
        received = [.. s.RequireMx.Messages().Where(m => m.Text.Contains("held-one", StringComparison.Ordinal))];
        Assert.That(received, Has.Count.EqualTo(1), "released: received exactly once" + Context());
        var traceLines = received[0].Text.Split("\r\n").Where(l => l.StartsWith(TraceHeader.Name + ":", StringComparison.Ordinal)).ToList();
        await Assert.MultipleAsync(async () =>
        {
            Assert.That(traceLines, Has.Count.EqualTo(1), received[0].HeaderSection);
            Assert.That(traceLines[0], Does.StartWith($"{TraceHeader.Name}: uid={TestUsers.Alice.Uid} user={TestUsers.Alice.Name};").And.EndWith($"id={kept}"));
            Assert.That(received[0].RcptTo, Is.EqualTo(new[] { To }));
            Assert.That(await WaitForStateAsync(s, daemon, kept, "delivered", TimeSpan.FromSeconds(5)), Is.EqualTo("delivered"));
            Assert.That(usageHeld, Is.EqualTo(usageBefore + 2), "the two held messages counted as they were held");
            Assert.That(await MessagesLastHourAsync(s, daemon), Is.EqualTo(usageHeld), "not counted again once released and delivered");
        });

        var delete = await CliAsync(s.Ns, daemon, "delete", dropped);
        Assert.That(delete.Succeeded, Is.True, delete.Describe());
        var holdDirectory = Path.Combine(StateDirectory(daemon), "held");
        await Assert.MultipleAsync(async () =>
        {
            Assert.That(Listed(await CliJsonAsync(s, daemon, "held"), dropped), Is.Null, "deleted: no longer listed");
            Assert.That(Directory.EnumerateFiles(holdDirectory).Where(f => Path.GetFileName(f).StartsWith(dropped, StringComparison.Ordinal)), Is.Empty, "its files are gone");
            Assert.That(File.GetUnixFileMode(holdDirectory), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute));
        });
        await Task.Delay(500);
        Assert.That(s.RequireMx.Messages().Where(m => m.Text.Contains("held-two", StringComparison.Ordinal)), Is.Empty, "a deleted message is never delivered" + Context());
    }

    [Test]
    public async Task A_held_message_survives_SIGKILL_right_after_the_250_and_is_released_after_the_restart()
    {
        await using var s = await Scenario.StartAsync(startDaemon: false);
        var config = HoldConfig(s.Dir.PathOf("alert.env"));
        var first = await DaemonProcess.StartAsync(s.Ns, s.Dir, config);
        string id;
        try
        {
            await SuspendAliceAsync(s, first);
            id = await HoldOneAsync(s, "held-killed", first);
            System.Diagnostics.Process.GetProcessById(first.Process.ProcessId).Kill();
        }
        finally
        {
            await first.DisposeAsync();
        }

        await using var second = await DaemonProcess.StartAsync(s.Ns, s.Dir, config);
        string Context() => "\n" + second.Transcript() + s.Describe();
        Assert.That(Listed(await CliJsonAsync(s, second, "held"), id)?.GetProperty("state").GetString(), Is.EqualTo("held"), "the held message survived" + Context());

        var release = await CliAsync(s.Ns, second, "release", id);
        Assert.That(release.Succeeded, Is.True, release.Describe());
        var received = await WaitForMxAsync(s, "held-killed", TimeSpan.FromSeconds(20));
        Assert.That(received, Has.Count.EqualTo(1), Context());
        Assert.That(received[0].Text.Split("\r\n").Count(l => l.StartsWith(TraceHeader.Name + ":", StringComparison.Ordinal)), Is.EqualTo(1), received[0].HeaderSection);
    }

    [Test]
    public async Task A_release_the_mx_refuses_for_good_is_marked_failed_kept_and_alerted()
    {
        await using var s = await Scenario.StartAsync(new FakeMxScript { FinalReply = "554 5.7.1 not wanted here" }, startDaemon: false);
        var alertFile = s.Dir.PathOf("hold-alert.env");
        await using var daemon = await DaemonProcess.StartAsync(s.Ns, s.Dir, HoldConfig(alertFile));
        string Context() => "\n" + daemon.Transcript() + s.Describe();
        await SuspendAliceAsync(s, daemon);
        var id = await HoldOneAsync(s, "held-refused", daemon);

        // The suspension's own alert wrote the file already; the hold's replaces it.
        File.Delete(alertFile);
        var release = await CliAsync(s.Ns, daemon, "release", id);
        Assert.That(release.Succeeded, Is.True, release.Describe());

        var state = await WaitForStateAsync(s, daemon, id, "failed", TimeSpan.FromSeconds(20));
        var alert = await WaitForAlertAsync(alertFile, TimeSpan.FromSeconds(10));
        var listed = Listed(await CliJsonAsync(s, daemon, "held"), id);
        Assert.Multiple(() =>
        {
            Assert.That(state, Is.EqualTo("failed"), Context());
            Assert.That(listed!.Value.GetProperty("lastResult").GetString(), Does.Contain("554 5.7.1 not wanted here"));
            Assert.That(File.Exists(Path.Combine(StateDirectory(daemon), "held", id + ".eml")), Is.True, "kept for the admin");
            Assert.That(alert, Is.Not.Null, "the alert ran" + Context());
            Assert.That(alert?.GetValueOrDefault("SMTPI_EVENT"), Is.EqualTo("hold-failed"));
            Assert.That(alert?.GetValueOrDefault("SMTPI_HOLD_ID"), Is.EqualTo(id));
            Assert.That(alert?.GetValueOrDefault("SMTPI_USER"), Is.EqualTo(TestUsers.Alice.Name));
            Assert.That(alert?.GetValueOrDefault("SMTPI_REASON"), Does.Contain("554 5.7.1 not wanted here"));
        });
    }

    [TestCase("owner")]
    [TestCase("mode")]
    public async Task A_hold_directory_that_is_not_the_daemons_alone_stops_the_start_with_exit_3(string problem)
    {
        await using var s = await Scenario.StartAsync(startMx: false, startDaemon: false);
        var holdDirectory = s.Dir.Subdirectory("held");
        File.SetUnixFileMode(holdDirectory, problem == "mode"
            ? UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute
            : UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        if (problem == "owner")
        {
            var chown = await s.Ns.RunAsync("chown", [TestUsers.Bob.Name, holdDirectory]);
            Assert.That(chown.Succeeded, Is.True, chown.Describe());
        }

        var configPath = DaemonProcess.WriteConfig(s.Dir, Config(("Hold.Directory", holdDirectory)));
        var run = await DaemonProcess.RunVerbAsync(s.Ns, "run", configPath);
        var expected = problem == "mode" ? "has mode 0750; it must be 0700" : $"is owned by uid {TestUsers.Bob.Uid}, not by the daemon";
        Assert.Multiple(() =>
        {
            Assert.That(run.ExitCode, Is.EqualTo(3), run.Describe());
            Assert.That(run.Stdout + run.Stderr, Does.Contain($"Hold.Directory {holdDirectory} {expected}").And.Contain("not starting"), run.Describe());
        });
    }
}
