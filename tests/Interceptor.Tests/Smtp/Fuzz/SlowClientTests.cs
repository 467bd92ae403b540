using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Interceptor.Core.Events;
using Interceptor.Core.Options;
using Interceptor.Tests.Smtp.Session;

namespace Interceptor.Tests.Smtp.Fuzz;

/// <summary>
/// Issue 4, case 7, the parts the integration tests cannot do quickly: the DATA rate limit only starts after a
/// 30 s grace by default (Smtp.DataRateGraceSeconds), so it is shown here with short limits in
/// process, in parallel with the other unit tests, instead of holding up the serial integration run for 30 s.
/// </summary>
[TestFixture]
[Parallelizable(ParallelScope.All)]
public class SlowClientTests
{
    [Test]
    [CancelAfter(90_000)]
    public async Task A_client_trickling_data_gets_421_after_the_grace_period_and_another_session_is_not_held_up()
    {
        var options = RelayHarness.Options with { Smtp = RelayHarness.Options.Smtp with { IdleTimeout = TimeSpan.FromSeconds(5), MinDataRate = DataRate.FromBytesPerSecond(1024) } };
        await using var upstream = new ScriptedUpstream();
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint, options);
        var client = relay.Client;
        await client.GreetAsync();
        await client.CommandAsync("MAIL FROM:<alice@customer.test>");
        await client.CommandAsync("RCPT TO:<bob@example.net>");
        Assert.That((await client.CommandAsync("DATA")).Code, Is.EqualTo(354));
        var clock = Stopwatch.StartNew();

        // Two bytes a second: never idle, far below 1024 bytes/s.
        using var stop = new CancellationTokenSource();
        var trickle = Task.Run(async () =>
        {
            await client.SendAsync("Subject: slow\r\n\r\n");
            while (!stop.IsCancellationRequested)
            {
                await Task.Delay(500, stop.Token).ContinueWith(_ => { }, TaskScheduler.Default);
                try
                {
                    await client.SendAsync("x");
                }
                catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException)
                {
                    return;
                }
            }
        });

        // Meanwhile another client's message goes through at once.
        await Task.Delay(2000);
        await using var bystanderUpstream = new ScriptedUpstream();
        await using var bystander = await RelayHarness.StartAsync(bystanderUpstream.EndPoint, options);
        var bystanderClock = Stopwatch.StartNew();
        await bystander.Client.GreetAsync();
        var bystanderReply = await bystander.Client.SendMessageAsync("carol@customer.test", ["dave@example.net"], "Subject: quick\r\n\r\nhello\r\n");
        var bystanderSeconds = bystanderClock.Elapsed.TotalSeconds;

        var reply = await client.ReadReplyAsync(TimeSpan.FromSeconds(45));
        var elapsed = clock.Elapsed.TotalSeconds;
        await stop.CancelAsync();
        await trickle;

        await Wait.UntilAsync(() => relay.Recorder.Events.Count >= 1, "the transaction recorded (right after the client's final reply)");
        await TestContext.Out.WriteLineAsync($"trickled DATA cut off after {elapsed:F1} s: {reply.Text}; a bystander's message took {bystanderSeconds:F2} s meanwhile");
        Assert.Multiple(() =>
        {
            Assert.That(reply.Text, Does.StartWith("421 4.4.2 ").And.Contain("slower than 1024 bytes/s"));
            Assert.That(elapsed, Is.InRange(29.5, 35), "after the 30 s grace, at the next byte");
            Assert.That(bystanderReply.Code, Is.EqualTo(250));
            Assert.That(bystanderSeconds, Is.LessThan(2));
            Assert.That(relay.Recorder.Events.Single().Outcome, Is.EqualTo(TransactionOutcome.Refused));
        });
        Assert.That(await client.IsClosedAsync(), Is.True, "disconnected");
        var session = await upstream.SessionAsync(0);
        Assert.That(await Wait.ForAsync(session.Ended, "the relay to drop the upstream"), Is.EqualTo(UpstreamEnd.Reset), "the partial message is aborted upstream");
        Assert.That(session.Messages, Is.Empty);
    }

    /// <summary>
    /// A command trickled one byte at a time is never idle; it is cut by Smtp.CommandLineTimeoutSeconds. The 421
    /// should say so: "no input for 10 s" after 1 s of steady input sends an admin reading logs the wrong way.
    /// </summary>
    [Test]
    public async Task A_command_cut_by_the_line_timeout_gets_a_421_that_names_the_line_timeout_not_idleness()
    {
        var options = RelayHarness.Options with { Smtp = RelayHarness.Options.Smtp with { IdleTimeout = TimeSpan.FromSeconds(10), CommandLineTimeout = TimeSpan.FromSeconds(1) } };
        await using var upstream = new ScriptedUpstream();
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint, options);
        await relay.Client.GreetAsync();
        var clock = Stopwatch.StartNew();
        using var stop = new CancellationTokenSource();
        var trickle = Task.Run(async () =>
        {
            foreach (var b in "NOOP trickled\r\n")
            {
                await Task.Delay(300, stop.Token).ContinueWith(_ => { }, TaskScheduler.Default);
                try
                {
                    await relay.Client.SendAsync(b.ToString());
                }
                catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException)
                {
                    return;
                }
            }
        });

        var reply = await relay.Client.ReadReplyAsync(TimeSpan.FromSeconds(5));
        var elapsed = clock.Elapsed.TotalSeconds;
        await stop.CancelAsync();
        await trickle;

        Assert.That(reply.Text, Does.StartWith("421 4.4.2 "));
        Assert.That(elapsed, Is.LessThan(3), "cut by the 1 s line timeout, not the 10 s idle timeout");
        Assert.That(reply.Text, Does.Not.Contain("no input for 10 s"), "the reply blames idleness that did not happen");
    }

    /// <summary>
    /// A client that goes silent in the middle of DATA gets 421 after the idle timeout; the upstream's open DATA must
    /// then be dropped at once (RST), never sent QUIT, which it would take as a line of the message. The scripted
    /// upstream cannot show this (it records no partial data on a reset), so this upstream records raw bytes.
    /// </summary>
    [Test]
    public async Task A_client_silent_in_the_middle_of_data_gets_its_upstream_dropped_at_once_without_QUIT_in_the_data()
    {
        var options = RelayHarness.Options with { Smtp = RelayHarness.Options.Smtp with { IdleTimeout = TimeSpan.FromSeconds(1) } };
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var upstream = RecordDataAsync(listener);
        await using var relay = await RelayHarness.StartAsync((IPEndPoint)listener.LocalEndpoint, options);
        var client = relay.Client;
        await client.GreetAsync();
        await client.CommandAsync("MAIL FROM:<alice@customer.test>");
        await client.CommandAsync("RCPT TO:<bob@example.net>");
        Assert.That((await client.CommandAsync("DATA")).Code, Is.EqualTo(354));
        await client.SendAsync("Subject: x\r\n\r\nhalf a message\r\n");

        var reply = await client.ReadReplyAsync();
        var clock = Stopwatch.StartNew();
        var (data, end) = await upstream.WaitAsync(TimeSpan.FromSeconds(10));
        var dropAfter = clock.Elapsed.TotalSeconds;

        await TestContext.Out.WriteLineAsync($"client got: {reply.Text}; the upstream's DATA ended by {end} {dropAfter:F2} s later, having received: {data.Replace("\r\n", "<CRLF>", StringComparison.Ordinal)}");
        Assert.Multiple(() =>
        {
            Assert.That(reply.Text, Does.StartWith("421 4.4.2 "));
            Assert.That(data, Does.Not.Contain("QUIT"), "QUIT was written into the upstream's open DATA section");
            Assert.That(end, Is.EqualTo("reset"), "an unfinished DATA is aborted");
            Assert.That(dropAfter, Is.LessThan(1), "at once, not after waiting for a reply to QUIT");
        });
    }

    /// <summary>A one-session upstream: greets, accepts the envelope, and returns what came after its 354 and how the connection ended.</summary>
    private static async Task<(string Data, string End)> RecordDataAsync(TcpListener listener)
    {
        using var socket = await listener.AcceptSocketAsync();
        await using var stream = new NetworkStream(socket);
        var reader = new WireReader(stream);
        var data = new StringBuilder();
        var inData = false;
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await stream.WriteAsync("220 raw.test ESMTP\r\n"u8.ToArray(), stop.Token);
        try
        {
            while (await reader.ReadLineAsync(stop.Token) is { } line)
            {
                if (inData)
                {
                    data.Append(Encoding.UTF8.GetString(line));
                    continue;
                }

                var verb = WireReader.Text(line).Split(' ')[0].ToUpperInvariant();
                inData = verb == "DATA";
                var answer = verb switch
                {
                    "EHLO" => "250 raw.test\r\n",
                    "DATA" => "354 go ahead\r\n",
                    "QUIT" => "221 bye\r\n",
                    _ => "250 2.0.0 Ok\r\n",
                };
                await stream.WriteAsync(Encoding.ASCII.GetBytes(answer), stop.Token);
            }

            return (data.ToString(), "close");
        }
        catch (IOException)
        {
            return (data.ToString(), "reset");
        }
        catch (OperationCanceledException)
        {
            return (data.ToString(), "still open after 30 s");
        }
    }
}
