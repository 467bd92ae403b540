using static Interceptor.IntegrationTests.PolicyTestSupport;

namespace Interceptor.IntegrationTests;

/// <summary>
/// Issue 12.8: once the final dot has gone upstream, the wait for the verdict is bounded by
/// Relay.DataReplyTimeoutSeconds alone. The session timeout must not cut it and release the quota of a message
/// the upstream delivered.
/// </summary>
[TestFixture]
[CancelAfter(120_000)]
public sealed class UncountedDeliveryTests
{
    [Test]
    public async Task A_final_dot_answered_after_the_session_timeout_is_still_charged_to_the_quota_and_recorded_as_delivered()
    {
        var config = Config(
            ("Smtp.SessionTimeoutSeconds", 3),
            ("Smtp.IdleTimeoutSeconds", 3),
            ("Limits.Default.MessagesPerHour", 1));
        await using var s = await Scenario.StartAsync(script: new FakeMxScript { FinalDelaySeconds = 5 }, config: config);
        var alice = TestUsers.Alice;

        var first = await SendAsync(s, alice, "slow-verdict");
        var logged = await s.RequireDaemon.WaitForTransactionsAsync(1, TimeSpan.FromSeconds(15));
        var second = await SendAsync(s, alice, "next");
        // Without the run's SMTPI_KEEP_TEST_USERS, which the binary would read as a configuration key.
        var log = await s.Ns.RunAsync("/usr/bin/env", ["-u", "SMTPI_KEEP_TEST_USERS", DaemonProcess.DotnetHost, DaemonProcess.AssemblyPath, "log", "--json", "--config", s.RequireDaemon.ConfigPath], TimeSpan.FromSeconds(60));

        Assert.Multiple(() =>
        {
            Assert.That(s.RequireMx.Messages(), Has.Count.EqualTo(1), "the fake MX accepted the first message" + s.Describe());
            Assert.That(first.Reply("BODY")?.Raw, Does.StartWith("250").Or.StartWith("451 4.4.2"),
                "the client gets the upstream's 250, or 451 4.4.2 delivery not confirmed, never a 421 that hides a delivery\n" + first.Describe() + s.Describe());
            Assert.That(ReplyLine(second, "MAIL"), Is.EqualTo("451 4.7.1 hourly message quota for user smtpi-alice exhausted (1/1); try later"),
                "the delivered message was charged\n" + second.Describe() + s.Describe());
            Assert.That(logged.Select(t => t.Reply), Has.None.Contains("aborted"), "not recorded as aborted" + s.Describe());
            Assert.That(log.Stdout, Does.Contain("\"delivered\"").Or.Contain("\"unknown\""), "the store records it as delivered (or unknown)\n" + log.Describe());
            Assert.That(log.Stdout, Does.Not.Contain("aborted"), log.Describe());
        });
    }
}
