using Interceptor.Core.Options;
using Interceptor.Core.Policy;
using Interceptor.Smtp.Upstream;
using Interceptor.Tests.TestDoubles;

namespace Interceptor.Tests.Smtp.Session;

/// <summary>The session asks its <see cref="IMailPolicy"/> and nothing else for limits and admission (upstream replayed).</summary>
[TestFixture]
[Parallelizable(ParallelScope.All)]
public class PolicyPortTests
{
    private static readonly UpstreamSettings NoReuse = UpstreamSettings.From(RelayHarness.Options.Relay) with { Reuse = UpstreamReuse.Off };

    [Test]
    public async Task The_session_takes_its_message_bounds_from_the_policy_not_from_the_options()
    {
        var connector = new ScriptedConnector(ScriptedDialogue.Greeted(RelayHarness.HeloName, "SIZE 5000000")
            .Client("MAIL FROM:<a@customer.test>").Server("250 Ok")
            .Client("RCPT TO:<one@example.net>").Server("250 Ok")
            .Client("QUIT"));
        await using var cache = new UpstreamConnectionCache(NoReuse, connector);
        var policy = new UnlimitedMailPolicy(new QuotaLimits { MessageSizeBytes = 1000, RecipientsPerMessage = 1 });
        await using var relay = await RelayHarness.StartAsync(ScriptedConnector.Mx, RelayHarness.Options, cache, policy);

        var ehlo = await relay.Client.GreetAsync();
        await relay.Client.CommandAsync("MAIL FROM:<a@customer.test>");
        await relay.Client.CommandAsync("RCPT TO:<one@example.net>");
        var second = await relay.Client.CommandAsync("RCPT TO:<two@example.net>");
        await relay.Client.CommandAsync("QUIT");
        await Wait.ForAsync(relay.Session, "the session to end");

        Assert.That(ehlo.Keywords, Does.Contain("SIZE 1000"));
        Assert.That(second.Text, Is.EqualTo("452 4.5.3 too many recipients for user alice (1/1 per message); send the rest in another message"));
        connector.AssertPlayedOut();
    }

    [Test]
    public async Task A_user_the_daemons_policy_suspended_is_refused_at_mail_and_nothing_reaches_the_upstream()
    {
        var connector = new ScriptedConnector(ScriptedDialogue.Greeted(RelayHarness.HeloName).Client("QUIT"));
        await using var cache = new UpstreamConnectionCache(NoReuse, connector);
        var fixture = new PolicyFixture();
        await fixture.Suspensions.SuspendAsync(new Suspension(RelayHarness.Uid, RelayHarness.User, "spam run", DateTimeOffset.UtcNow, SuspensionSource.Admin), new Dictionary<string, string>(), CancellationToken.None);
        await using var relay = await RelayHarness.StartAsync(ScriptedConnector.Mx, RelayHarness.Options, cache, fixture.Policy);

        await relay.Client.GreetAsync();
        var mail = await relay.Client.CommandAsync("MAIL FROM:<a@customer.test>");
        await relay.Client.CommandAsync("QUIT");
        await Wait.ForAsync(relay.Session, "the session to end");

        Assert.That(mail.Text, Does.StartWith("550 5.7.1 user alice is suspended from sending mail: spam run"));
        Assert.That(fixture.Kernel.Calls, Is.EqualTo(new[] { "suspend 1001", "alert 1001 Admin" }));
        connector.AssertPlayedOut();
    }
}
