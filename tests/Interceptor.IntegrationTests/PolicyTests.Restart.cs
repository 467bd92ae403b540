using static Interceptor.IntegrationTests.PolicyTestSupport;

namespace Interceptor.IntegrationTests;

/// <summary>
/// A restart (SIGTERM, start again with the same State.Directory) neither resets a quota nor forgets a suspension:
/// both come back from the SQLite store, and the suspension is written into the freshly installed nft table.
/// </summary>
[TestFixture]
[CancelAfter(120_000)]
public sealed class RestartPolicyTests
{
    [Test]
    public async Task Quota_usage_and_an_automatic_suspension_survive_a_restart()
    {
        var config = Config(
            ("Limits.Default.MessagesPerHour", 3),
            ("Limits.Users.smtpi-bob.MessagesPerHour", 1),
            ("Suspension.RefusalLimit", 2));
        await using var s = await Scenario.StartAsync(config: config);
        var alice = TestUsers.Alice;
        var bob = TestUsers.Bob;

        for (var i = 1; i <= 3; i++)
        {
            AssertDelivered(await SendAsync(s, alice, $"alice-{i}"), s.Describe());
        }

        // Bob: one delivered, then two refusals, which suspend him (Suspension.RefusalLimit=2).
        AssertDelivered(await SendAsync(s, bob, "bob-1"), s.Describe());
        await SendAsync(s, bob, "bob-2");
        await SendAsync(s, bob, "bob-3");
        var suspendedBefore = await WaitForSuspendedAsync(s.Ns, bob.Uid, suspended: true, TimeSpan.FromSeconds(5));
        Assert.That(suspendedBefore, Is.EqualTo(new[] { bob.Uid }), "bob is suspended before the restart" + s.Describe());

        var exitCode = await s.RequireDaemon.StopAsync();
        Assert.That(exitCode, Is.EqualTo(0), "SIGTERM stops the daemon cleanly" + s.Describe());

        // Remove the table the first run left behind, so the suspension can only come back from the store.
        var delete = await s.Ns.RunAsync("nft", ["delete", "table", "inet", NftTable.Name]);
        Assert.That(delete.Succeeded, Is.True, delete.Describe());

        await using var second = await DaemonProcess.StartAsync(s.Ns, s.Dir, config);
        string Context() => "\n" + second.Transcript() + s.Describe();
        var suspendedAfter = await NftTable.SuspendedUidsAsync(s.Ns);
        var fourth = await SendAsync(s, alice, "alice-4");
        var bobProbe = await TcpProbe.ConnectAsync(s.Ns, bob, "127.0.0.2", 25);
        var ready = second.LogLines().FirstOrDefault(l => l.Message.StartsWith("ready", StringComparison.Ordinal));

        Assert.Multiple(() =>
        {
            Assert.That(suspendedAfter, Is.EqualTo(new[] { bob.Uid }), "the stored suspension is in the new table's suspended_uids" + Context());
            Assert.That(ReplyLine(fourth, "MAIL"), Is.EqualTo("451 4.7.1 hourly message quota for user smtpi-alice exhausted (3/3); try later"),
                "alice's 3 deliveries still count after the restart\n" + fourth.Describe() + Context());
            Assert.That(bobProbe.Refused, Is.True, "the kernel still refuses bob\n" + bobProbe);
            Assert.That(ready?.StateString("Restored"), Is.EqualTo("4"), "the ready line counts the 4 restored deliveries\n" + ready?.Raw);
            Assert.That(s.RequireMx.Messages(), Has.Count.EqualTo(4), Context());
        });
    }
}
