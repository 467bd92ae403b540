using Interceptor.Daemon.Hold;
using Interceptor.Smtp.Upstream;
using Interceptor.Tests.TestDoubles;

namespace Interceptor.Tests.Daemon.Hold;

/// <summary><see cref="UpstreamDelivery"/> against a recorded dialogue: what a released message's outcome says.</summary>
[TestFixture]
public sealed class UpstreamDeliveryTests
{
    private const string Helo = "relay.test";

    [Test]
    public async Task Refused_recipients_are_named_a_few_and_the_rest_counted_in_the_delivered_outcome()
    {
        // Her recipients are hers to choose: 40 refused ones of 200 characters would make an 8 KB outcome line.
        var refused = Enumerable.Range(0, 40).Select(i => $"{new string('r', 190)}{i:D2}@example.net").ToList();
        var dialogue = ScriptedDialogue.Greeted(Helo).Client("MAIL FROM:<alice@site.test>").Server("250 2.1.0 Ok");
        foreach (var recipient in refused)
        {
            dialogue = dialogue.Client($"RCPT TO:<{recipient}>").Server("550 5.1.1 no such user");
        }

        dialogue = dialogue.Client("RCPT TO:<bob@example.net>").Server("250 2.1.5 Ok")
            .Client("DATA").Server("354 go")
            .ClientBytes("Subject: x\r\n\r\nbody\r\n.\r\n").Server("250 2.0.0 queued as 42");
        var connector = new ScriptedConnector(dialogue);
        var cache = new UpstreamConnectionCache(new UpstreamSettings(Helo, TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(2)), connector);
        var held = new HeldMessage("h1", 1001, "alice", "alice@site.test", [.. refused, "bob@example.net"], ScriptedConnector.Mx.ToString(), "direct",
            "scan", "spam", 9.5, [], DateTimeOffset.UnixEpoch, 30, HoldState.Released);

        using var message = new MemoryStream("Subject: x\r\n\r\nbody\r\n"u8.ToArray());
        var outcome = await new UpstreamDelivery(cache).DeliverAsync(held, message, CancellationToken.None);

        Assert.Multiple(() =>
        {
            Assert.That(outcome.Kind, Is.EqualTo(DeliveryKind.Delivered), outcome.Result);
            Assert.That(outcome.Result, Does.StartWith("250 2.0.0 queued as 42 (refused for " + string.Join(", ", refused.Take(5)) + " and 35 more: 550 5.1.1 no such user)"));
            Assert.That(outcome.Result, Has.Length.LessThan(1_500));
        });
    }
}
