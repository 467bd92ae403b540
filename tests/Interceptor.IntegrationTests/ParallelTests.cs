using System.Text.RegularExpressions;

namespace Interceptor.IntegrationTests;

/// <summary>
/// Concurrency: many sessions from two users at once must each be attributed to the right uid.
/// A mix-up here (a shared buffer, a lookup keyed by the wrong tuple) would blame the wrong
/// customer, which is worse than no header at all.
/// </summary>
[TestFixture]
[CancelAfter(240_000)]
public sealed partial class ParallelTests
{
    private const int PerUser = 25;
    private const string To = "rcpt@example.test";

    [Test]
    public async Task Fifty_parallel_sessions_from_two_users_are_each_attributed_to_their_sender()
    {
        // 25 concurrent sessions per user: above the default per-user connection cap (20), so raise it here.
        await using var s = await Scenario.StartAsync(config: new DaemonConfig { Settings = new Dictionary<string, System.Text.Json.Nodes.JsonNode?> { ["Limits.Default.Connections"] = 50 } });
        var users = new[] { TestUsers.Alice, TestUsers.Bob };
        var message = TestMessage.Small("someone@client.test", To, "parallel");

        // One Python process per user, each opening 25 connections at once; both users at the same time.
        var runs = await Task.WhenAll(users.Select(user =>
            Clients.SmtplibAsync(s.Ns, user, s.Dir, "127.0.0.2:25", user.Name + "@client.test", [To], message,
                parallel: PerUser, label: user.Name, timeout: TimeSpan.FromSeconds(150))));

        foreach (var run in runs)
        {
            Assert.That(run.Succeeded, Is.True, "every send must succeed\n" + run.Describe() + s.Describe());
        }

        var messages = s.RequireMx.Messages();
        Assert.That(messages, Has.Count.EqualTo(2 * PerUser), s.Describe());
        var seen = new HashSet<string>();
        foreach (var relayed in messages)
        {
            var header = TraceHeader.TryParse(relayed.FirstLine);
            var sender = SenderPattern().Match(relayed.Text);
            Assert.That(header, Is.Not.Null, $"message {relayed.Number}: first line '{relayed.FirstLine}'");
            Assert.That(sender.Success, Is.True, $"message {relayed.Number} lost its X-Test-Sender header");
            var user = users.Single(u => u.Name == sender.Groups[1].Value);
            Assert.That((header!.Uid, header.User), Is.EqualTo((user.Uid, user.Name)),
                $"message {relayed.Number} was sent by {user} (copy {sender.Groups[2].Value}) but attributed to uid={header.Uid} user={header.User}");
            Assert.That(relayed.MailFrom, Is.EqualTo(user.Name + "@client.test"), $"message {relayed.Number} envelope");
            var copy = sender.Groups[1].Value + " " + sender.Groups[2].Value;
            Assert.That(seen.Add(copy), Is.True, $"duplicate relayed copy: {copy}");
        }

        var transactions = await s.RequireDaemon.WaitForTransactionsAsync(2 * PerUser);
        Assert.That(transactions, Has.Count.EqualTo(2 * PerUser), "one transaction line per message");
        foreach (var user in users)
        {
            Assert.That(transactions.Count(t => t.Uid == user.Uid && t.User == user.Name), Is.EqualTo(PerUser), $"transactions logged for {user}");
        }
    }

    // The second line: the send script prepends it right after where the trace header goes.
    [GeneratedRegex(@"^X-Interceptor-Origin: [^\r\n]*\r\nX-Test-Sender: (\S+) (\d+)\r\n")]
    private static partial Regex SenderPattern();
}
