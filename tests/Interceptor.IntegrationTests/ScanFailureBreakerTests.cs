using System.Text.Json.Nodes;

namespace Interceptor.IntegrationTests;

/// <summary>
/// Suspension.LocalFailureLimit with the real daemon and a real scanner: a scanner that never answers (which any local
/// user can arrange, 127.0.0.1:783 being open to all) fails alice's messages on our side, uncounted; at the limit her MAIL
/// gets a 451 before anything reaches the MX, bob's does not, and once Debian's spamd answers again one trial message of
/// hers gets through the scan and frees her messages.
/// </summary>
[TestFixture]
[CancelAfter(300_000)]
public sealed class ScanFailureBreakerTests
{
    private const string Mx = "127.0.0.2:25";
    private const string To = "rcpt@example.test";

    [Test]
    public async Task Scan_timeouts_at_the_limit_refuse_the_users_mail_for_the_cool_down_then_a_trial_that_gets_through_frees_her_messages()
    {
        var config = new DaemonConfig
        {
            Settings = new Dictionary<string, JsonNode?>
            {
                ["Scan.Engine"] = "Spamd",
                ["Scan.Endpoint"] = Spamd.Endpoint,
                ["Scan.TimeoutSeconds"] = 2,
                ["Suspension.LocalFailureLimit"] = 2,
                ["Suspension.LocalFailureCooldownSeconds"] = 3,
            },
        };
        await using var s = await Scenario.StartAsync(config: config);
        var mute = s.Ns.StartBackground("mute-scanner", Requirements.Python, ["-I", "-c",
            $"import socket\ns=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1',{Spamd.Port})); s.listen(8); print('ready', flush=True)\nheld=[]\n" +
            "while True:\n  c,_=s.accept(); held.append(c)\n"]);
        async Task<DialogResult> SendAsync(TestUser user, string subject)
        {
            var from = $"{user.Name}@client.test";
            var body = Clients.WriteStuffedBody(s.Dir, TestMessage.Small(from, To, subject));
            return await Clients.DialogAsync(s.Ns, user, s.Dir, SmtpDialog.Transaction(Mx, from, [To], body));
        }

        DialogResult first, second, third, bobs;
        var opened = new System.Diagnostics.Stopwatch();
        await using (mute)
        {
            Assert.That(await mute.WaitForLineAsync(l => l == "ready", TimeSpan.FromSeconds(15)), Is.Not.Null, mute.Transcript());
            first = await SendAsync(TestUsers.Alice, "mute-1");
            second = await SendAsync(TestUsers.Alice, "mute-2");
            opened.Start();
            third = await SendAsync(TestUsers.Alice, "mute-3");
            bobs = await SendAsync(TestUsers.Bob, "bob-mute");
        }

        var context = "\n" + first.Describe() + second.Describe() + third.Describe() + bobs.Describe() + s.Describe();
        Assert.Multiple(() =>
        {
            Assert.That(first.Reply("BODY")?.Raw, Does.StartWith("451 4.7.0 the message could not be scanned for spam (no verdict within 2 s"), context);
            Assert.That(second.Reply("BODY")?.Raw, Does.StartWith("451 4.7.0 the message could not be scanned"), context);
            Assert.That(third.Reply("MAIL")?.Raw, Does.StartWith($"451 4.3.0 messages of user {TestUsers.Alice.Name} keep failing on our side (2 within the last 10 min"), "refused at MAIL: no RCPT of hers reaches the MX" + context);
            Assert.That(bobs.Reply("MAIL")?.Code, Is.EqualTo(250), "bob is not held back by alice's failures" + context);
            Assert.That(bobs.Reply("BODY")?.Raw, Does.StartWith("451 4.7.0 the message could not be scanned"), context);
            Assert.That(s.RequireDaemon.LogLines().Select(l => l.Message), Has.Some.Contains($"messages of uid={TestUsers.Alice.Uid} user={TestUsers.Alice.Name} keep failing on our side (2 within 10 min"), context);
            Assert.That(s.RequireMx.Messages(), Is.Empty, context);
        });

        // The mute scanner is gone (its process ended with the block above); a real spamd answers on the same port. The
        // first message after the cool-down is the trial: Debian's spamd judges it, so it got through our stages.
        await using var spamd = await Spamd.StartAsync(s.Ns, s.Dir);
        if (TimeSpan.FromSeconds(4) - opened.Elapsed is { Ticks: > 0 } rest)
        {
            await Task.Delay(rest);
        }

        var trial = await SendAsync(TestUsers.Alice, "trial");

        // Freed, not one at a time: a message while another session of hers holds a transaction open. (Tripped, the
        // holder's MAIL would be the trial and this one would get "one message is being tried".)
        var holder = new HostileDialog(Mx).SendAndRead("EHLO", "EHLO client.test\r\n").SendAndRead("MAIL", $"MAIL FROM:<{TestUsers.Alice.Name}@client.test>\r\n")
            .Sleep("HOLD", 5).SendAndRead("QUIT", "QUIT\r\n").RunAsync(s.Ns, TestUsers.Alice, s.Dir);
        await Task.Delay(TimeSpan.FromSeconds(2));
        var after = await SendAsync(TestUsers.Alice, "after");
        var held = await holder;

        context = "\n" + trial.Describe() + held.Describe() + after.Describe() + s.Describe() + "\n" + spamd.Transcript();
        Assert.Multiple(() =>
        {
            Assert.That(trial.Reply("BODY")?.Code, Is.EqualTo(250), context);
            Assert.That(held.Reply("MAIL")?.Code, Is.EqualTo(250), context);
            Assert.That(after.Reply("MAIL")?.Code, Is.EqualTo(250), "not held to one at a time" + context);
            Assert.That(after.Reply("BODY")?.Code, Is.EqualTo(250), context);
            Assert.That(s.RequireMx.Messages(), Has.Count.EqualTo(2), context);
            Assert.That(s.RequireDaemon.LogLines().Select(l => l.Message), Has.Some.Contains($"of uid={TestUsers.Alice.Uid} user={TestUsers.Alice.Name} got through our stages after failures of ours"), context);
        });
    }
}
