using static Interceptor.IntegrationTests.PolicyTestSupport;

namespace Interceptor.IntegrationTests;

/// <summary>
/// Fail closed on the accounting store: when state.db is deleted, or its directory made read-only, under a running
/// daemon, the next message gets 451 4.3.0 before a byte of it goes upstream, and the log says why.
/// </summary>
[TestFixture]
[CancelAfter(120_000)]
public sealed class StorePolicyTests
{
    private const UnixFileMode ReadOnlyDirectory =
        UnixFileMode.UserRead | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;

    [TestCase("deleted")]
    [TestCase("read-only directory")]
    public async Task A_broken_store_under_a_running_daemon_refuses_mail_with_451_and_relays_nothing(string breakage)
    {
        await using var s = await Scenario.StartAsync();
        var alice = TestUsers.Alice;
        var stateDirectory = StateDirectory(s.RequireDaemon);
        AssertDelivered(await SendAsync(s, alice, "before"), s.Describe());
        var dataEventsBefore = DataEvents(s);

        var mode = File.GetUnixFileMode(stateDirectory);
        try
        {
            if (breakage == "deleted")
            {
                foreach (var file in new[] { "state.db", "state.db-wal", "state.db-shm" })
                {
                    File.Delete(Path.Combine(stateDirectory, file));
                }
            }
            else
            {
                File.SetUnixFileMode(stateDirectory, ReadOnlyDirectory);
            }

            var refused = await SendAsync(s, alice, "after");
            var why = await s.RequireDaemon.Process.WaitForLineAsync(
                l => DaemonLogLine.TryParse(l) is { } line && line.LogLevel is "Error" or "Critical"
                    && line.Message.Contains("store", StringComparison.OrdinalIgnoreCase)
                    && line.Message.Contains(stateDirectory, StringComparison.Ordinal),
                TimeSpan.FromSeconds(5));

            // A dropped upstream connection reaches the fake MX's log a moment after the client's 451.
            for (var waited = 0; waited < 50 && !DataCommandsWithoutMessage(s, dataEventsBefore); waited++)
            {
                await Task.Delay(100);
            }

            Assert.Multiple(() =>
            {
                Assert.That(ReplyLine(refused, "DATA"), Is.EqualTo("451 4.3.0 accounting store unavailable; mail is not relayed unaccounted, try again later"),
                    refused.Describe() + s.Describe());
                Assert.That(refused.Reply("BODY"), Is.Null, "the client never got to send the body\n" + refused.Describe());
                Assert.That(s.RequireMx.Messages(), Has.Count.EqualTo(1), "only the message from before reached the MX" + s.Describe());
                Assert.That(DataCommandsWithoutMessage(s, dataEventsBefore), Is.True,
                    "no DATA reached the MX, or (when the pending row's commit was queued, so that the upstream's DATA went out beside it) its connection was dropped without a byte of a message" + s.Describe());
                Assert.That(why?.Text, Is.Not.Null, $"an error line naming the store under {stateDirectory}" + s.Describe());
            });
            if (breakage == "deleted")
            {
                Assert.That(why!.Text, Does.Contain("deleted"), why.Text);
            }
            else
            {
                Assert.That(why!.Text, Does.Contain("read-only"), why.Text);

                // Writable again: the store recovers by itself and mail flows.
                File.SetUnixFileMode(stateDirectory, mode);
                AssertDelivered(await SendAsync(s, alice, "recovered"), " (after the directory is writable again)" + s.Describe());
            }
        }
        finally
        {
            File.SetUnixFileMode(stateDirectory, mode);
        }
    }

    /// <summary>
    /// At most one DATA after the first <paramref name="before"/>, and if one, its connection closed with no message data
    /// after it: the upstream discards a transaction whose message never ended.
    /// </summary>
    private static bool DataCommandsWithoutMessage(Scenario s, int before)
    {
        var events = s.RequireMx.Events();
        var data = events.Select((e, i) => (e, i))
            .Where(x => x.e.GetProperty("kind").GetString() == "command" && string.Equals(x.e.GetProperty("line").GetString(), "DATA", StringComparison.OrdinalIgnoreCase))
            .Skip(before)
            .ToList();
        if (data.Count == 0)
        {
            return true;
        }

        var (command, index) = data.Single();
        var conn = command.GetProperty("conn").GetString();
        var later = events.Skip(index + 1).Where(e => e.GetProperty("conn").GetString() == conn).Select(e => e.GetProperty("kind").GetString()).ToList();
        return later.Contains("closed") && !later.Contains("data");
    }

    /// <summary>DATA commands the fake MX received (a relayed message starts with one), whatever became of them.</summary>
    private static int DataEvents(Scenario s) => s.RequireMx.Events().Count(e =>
        e.GetProperty("kind").GetString() == "command" && string.Equals(e.GetProperty("line").GetString(), "DATA", StringComparison.OrdinalIgnoreCase));
}
