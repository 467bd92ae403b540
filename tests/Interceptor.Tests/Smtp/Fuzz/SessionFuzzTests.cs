using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Interceptor.Core.Events;
using Interceptor.Core.Options;
using Interceptor.Smtp.Protocol;
using Interceptor.Smtp.Session;
using Interceptor.Smtp.Upstream;
using Interceptor.Tests.Smtp.Session;
using Interceptor.Tests.TestDoubles;
using Microsoft.Extensions.Logging.Abstractions;

namespace Interceptor.Tests.Smtp.Fuzz;

/// <summary>
/// Issue 4, case 11: a seeded, time-bounded fuzz test of the inbound session against an in-process upstream.
/// Random bytes and SMTP-shaped conversations (see <see cref="FuzzInput"/>) are played by many concurrent clients;
/// each session must never throw out of RunAsync, must end within its timeouts once the client goes quiet, must
/// never relay more messages than the client completed, and must only ever send the upstream clean commands and
/// clean, traced messages. Replay: SMTPI_FUZZ_SEED=&lt;seed&gt; (and SMTPI_FUZZ_CASE=&lt;index&gt; for one case);
/// SMTPI_FUZZ_SECONDS sets the time budget (default 20).
/// </summary>
[TestFixture]
[Parallelizable(ParallelScope.All)]
public class SessionFuzzTests
{
    private const string FinalReply = "250 2.0.0 Ok: queued as SCRIPTED";

    private static readonly InterceptorOptions Options = RelayHarness.Options with
    {
        Smtp = new SmtpOptions
        {
            IdleTimeout = TimeSpan.FromSeconds(1),
            CommandLineTimeout = TimeSpan.FromSeconds(1),
            SessionTimeout = TimeSpan.FromSeconds(8),
            ErrorDelay = TimeSpan.FromMilliseconds(10),
        },
        Limits = new LimitsOptions { Default = QuotaLimits.Defaults with { MessageSizeBytes = 200_000, RecipientsPerMessage = 5 } },
    };

    /// <summary>After the client goes quiet: the idle timeout, the upstream QUIT on the way out, and slack for a loaded machine.</summary>
    private static readonly TimeSpan QuietBound = TimeSpan.FromSeconds(Options.Smtp.IdleTimeout.TotalSeconds + Options.Relay.ReplyTimeout.TotalSeconds + 3);

    private static readonly HashSet<string> UpstreamVerbs = ["EHLO", "HELO", "STARTTLS", "MAIL", "RCPT", "DATA", "RSET", "NOOP", "QUIT"];

    [Test]
    [CancelAfter(180_000)]
    public async Task Random_and_smtp_shaped_input_never_breaks_a_session_nor_relays_more_than_the_client_completed()
    {
        var seed = EnvironmentInt("SMTPI_FUZZ_SEED") ?? Random.Shared.Next();
        var budget = TimeSpan.FromSeconds(EnvironmentInt("SMTPI_FUZZ_SECONDS") ?? 20);
        var only = EnvironmentInt("SMTPI_FUZZ_CASE");
        await TestContext.Out.WriteLineAsync($"fuzz seed {seed} (replay with SMTPI_FUZZ_SEED={seed}), budget {budget.TotalSeconds} s");

        var failures = new ConcurrentQueue<string>();
        var stats = new ConcurrentDictionary<string, int>();
        var next = only is null ? -1 : only.Value - 1;
        long bytes = 0, relayed = 0, slowestQuietMs = 0;
        var clock = Stopwatch.StartNew();
        async Task WorkerAsync()
        {
            while (clock.Elapsed < budget && failures.Count < 10)
            {
                var index = Interlocked.Increment(ref next);
                if (only is not null && index != only)
                {
                    return;
                }

                var fuzzCase = FuzzInput.Generate(index, CaseSeed(seed, index));
                var outcome = await RunCaseAsync(fuzzCase);
                foreach (var failure in outcome.Failures)
                {
                    failures.Enqueue($"{fuzzCase}: {failure}\ninput: {fuzzCase.Preview()}\nreplies: {outcome.Replies}");
                }

                stats.AddOrUpdate(fuzzCase.Kind.Split(',')[0] + "/" + fuzzCase.Ending, 1, (_, n) => n + 1);
                Interlocked.Add(ref bytes, fuzzCase.AllBytes.Length);
                Interlocked.Add(ref relayed, outcome.Relayed);
                InterlockedMax(ref slowestQuietMs, (long)outcome.Quiet.TotalMilliseconds);
            }
        }

        await Task.WhenAll(Enumerable.Range(0, Math.Max(4, Environment.ProcessorCount * 4)).Select(_ => Task.Run(WorkerAsync)));

        var inputs = stats.Values.Sum();
        var mix = string.Join(", ", stats.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{p.Key} {p.Value}"));
        await TestContext.Out.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
            $"fuzz seed {seed}: {inputs} inputs ({bytes} bytes) in {clock.Elapsed.TotalSeconds:F1} s; {relayed} messages relayed; slowest end after the client went quiet {slowestQuietMs} ms (bound {QuietBound.TotalMilliseconds} ms)\n  {mix}"));
        Assert.That(failures, Is.Empty, $"seed {seed}: {failures.Count} failing inputs; the first:\n" + string.Join("\n\n", failures.Take(3)));
        Assert.That(inputs, Is.GreaterThan(only is null ? 50 : 0), "the fuzz loop ran too few inputs to mean anything");
    }

    private sealed record CaseOutcome(IReadOnlyList<string> Failures, int Relayed, TimeSpan Quiet, string Replies);

    private static async Task<CaseOutcome> RunCaseAsync(FuzzCase fuzzCase)
    {
        var failures = new List<string>();
        await using var upstream = new ScriptedUpstream();
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        Socket server;
        using (var listener = new TcpListener(IPAddress.Loopback, 0))
        {
            listener.Start();
            await client.ConnectAsync(listener.LocalEndpoint);
            server = await listener.AcceptSocketAsync();
        }

        var recorder = new RecordingRecorder();
        Exception? runFault = null;
        Exception? disposeFault = null;
        using var shutdown = new CancellationTokenSource();
        var origin = new ConnectionOrigin(RelayHarness.Uid, RelayHarness.User, (IPEndPoint)client.LocalEndPoint!, upstream.EndPoint);
        var policy = new PolicyFixture(Options.Limits);
        await using var upstreams = new UpstreamConnectionCache(UpstreamSettings.From(Options.Relay) with { Reuse = UpstreamReuse.Off });
        var session = Task.Run(async () =>
        {
            // As the daemon does: the stream owns the socket and outlives the session.
            var stream = new NetworkStream(server, ownsSocket: true);
            var inbound = new InboundSession(stream, origin, Options, recorder, NullLogger.Instance, policy.Policy, upstreams);
            try
            {
                await inbound.RunAsync(shutdown.Token);
            }
            catch (Exception e)
            {
                runFault = e;
            }

            try
            {
                await inbound.DisposeAsync();
                await stream.DisposeAsync();
            }
            catch (Exception e)
            {
                disposeFault = e;
            }
        });

        var inbox = new ClientInbox(client);
        if (fuzzCase.WaitForGreeting)
        {
            await inbox.WaitForLinesAsync(1, TimeSpan.FromSeconds(3));
        }

        foreach (var segment in fuzzCase.Segments)
        {
            if (inbox.Closed)
            {
                break;
            }

            var seen = inbox.Lines;
            using var sendTimeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            try
            {
                await client.SendAsync(segment.Bytes, SocketFlags.None, sendTimeout.Token);
            }
            catch (OperationCanceledException)
            {
                failures.Add("the relay stopped reading: a send blocked for 10 s");
                break;
            }
            catch (SocketException)
            {
                break;
            }

            if (segment.AwaitReply)
            {
                await inbox.WaitForLinesAsync(seen + 1, TimeSpan.FromMilliseconds(400));
            }
        }

        var quietSince = Stopwatch.StartNew();
        switch (fuzzCase.Ending)
        {
            case FuzzEnding.Close:
                client.Close();
                break;
            case FuzzEnding.HalfClose:
                Try(() => client.Shutdown(SocketShutdown.Send));
                break;
            case FuzzEnding.Reset:
                Try(() => client.LingerState = new LingerOption(true, 0));
                client.Close();
                break;
        }

        if (await Task.WhenAny(session, Task.Delay(QuietBound)) != session)
        {
            failures.Add($"the session was still open {QuietBound.TotalSeconds} s after the client went quiet ({fuzzCase.Ending})");
            await shutdown.CancelAsync();
            if (await Task.WhenAny(session, Task.Delay(TimeSpan.FromSeconds(10))) != session)
            {
                failures.Add("and it did not end on shutdown either");
            }
        }

        var quiet = quietSince.Elapsed;
        client.Close();
        await inbox.Finished.WaitAsync(TimeSpan.FromSeconds(5)).ContinueWith(_ => { }, TaskScheduler.Default);
        await Task.WhenAll(upstream.Sessions.Select(s => s.Ended)).WaitAsync(TimeSpan.FromSeconds(5)).ContinueWith(_ => { }, TaskScheduler.Default);
        if (runFault is not null)
        {
            failures.Add("RunAsync threw: " + runFault);
        }

        if (disposeFault is not null)
        {
            failures.Add("disposing the session threw: " + disposeFault);
        }

        var messages = upstream.Sessions.SelectMany(s => s.Messages).ToList();
        failures.AddRange(CheckRelayed(fuzzCase.AllBytes, messages, upstream.Sessions.SelectMany(s => s.Commands).ToList(), inbox.Text, recorder.Events));
        return new CaseOutcome(failures, messages.Count, quiet, inbox.Text.Length > 2000 ? inbox.Text[..2000] + " [...]" : inbox.Text);
    }

    /// <summary>The properties that must hold whatever the client sent.</summary>
    private static IEnumerable<string> CheckRelayed(byte[] input, List<byte[]> messages, List<string> upstreamCommands, string replies, IReadOnlyList<TransactionEvent> events)
    {
        var clientLines = Encoding.UTF8.GetString(input).Split('\n').Select(l => CommandLine.Parse(l.TrimEnd('\r'))).ToList();
        var dataCommands = clientLines.Count(c => c.Verb == "DATA" && c.Argument.Length == 0);
        var endMarkers = Occurrences(input, "\r\n.\r\n"u8);
        if (messages.Count > Math.Min(dataCommands, endMarkers))
        {
            yield return $"{messages.Count} messages upstream, but the client sent {dataCommands} DATA commands and {endMarkers} CRLF.CRLF";
        }

        var header = $"X-Interceptor-Origin: uid={RelayHarness.Uid} user={RelayHarness.User}; host={RelayHarness.HeloName}; id=";
        foreach (var message in messages)
        {
            if (!message.AsSpan().StartsWith(Encoding.ASCII.GetBytes(header)))
            {
                yield return "an upstream message does not start with the trace header: " + Encoding.UTF8.GetString(message[..Math.Min(200, message.Length)]);
            }

            for (var i = 0; i < message.Length; i++)
            {
                var bad = message[i] == 0
                    || (message[i] == '\r' && (i + 1 == message.Length || message[i + 1] != '\n'))
                    || (message[i] == '\n' && (i == 0 || message[i - 1] != '\r'));
                if (bad)
                {
                    yield return $"an upstream message holds a NUL, bare CR or bare LF at byte {i}";
                    break;
                }
            }
        }

        foreach (var command in upstreamCommands)
        {
            var verb = CommandLine.Parse(command).Verb;
            if (!UpstreamVerbs.Contains(verb) || command.Contains('\0', StringComparison.Ordinal) || command.Contains('\r', StringComparison.Ordinal))
            {
                yield return "the upstream received a command the relay never writes itself: " + SessionReplies.Printable(command);
            }
        }

        foreach (var verb in new[] { "MAIL", "RCPT" })
        {
            var upstream = upstreamCommands.Count(c => CommandLine.Parse(c).Verb == verb);
            var sent = clientLines.Count(c => c.Verb == verb);
            if (upstream > sent)
            {
                yield return $"{upstream} {verb} commands upstream for {sent} from the client";
            }
        }

        var confirmed = replies.Split('\n').Count(l => l.StartsWith(FinalReply, StringComparison.Ordinal));
        var delivered = events.Count(e => e.Outcome == TransactionOutcome.Delivered);
        if (confirmed > messages.Count || delivered > messages.Count)
        {
            yield return $"the client got {confirmed} final 250s and {delivered} transactions were logged as delivered, for {messages.Count} messages upstream";
        }
    }

    private static int Occurrences(ReadOnlySpan<byte> haystack, ReadOnlySpan<byte> needle)
    {
        var count = 0;
        for (var at = haystack.IndexOf(needle); at >= 0; at = haystack.IndexOf(needle))
        {
            count++;
            haystack = haystack[(at + 1)..];
        }

        return count;
    }

    private static int CaseSeed(int seed, int index) => unchecked((int)(((uint)seed * 2654435761u) ^ ((uint)index * 40503u)));

    private static int? EnvironmentInt(string name) =>
        int.TryParse(Environment.GetEnvironmentVariable(name), NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) ? value : null;

    private static void InterlockedMax(ref long target, long value)
    {
        var current = Interlocked.Read(ref target);
        while (value > current && Interlocked.CompareExchange(ref target, value, current) != current)
        {
            current = Interlocked.Read(ref target);
        }
    }

    private static void Try(Action action)
    {
        try
        {
            action();
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // The relay already hung up.
        }
    }

    /// <summary>Reads everything the relay says to the client, counting lines, until it closes.</summary>
    private sealed class ClientInbox
    {
        private const int MaxKept = 1 << 20;
        private readonly StringBuilder _text = new();
        private int _lines;

        public ClientInbox(Socket socket) => Finished = Task.Run(() => ReadAsync(socket));

        public Task Finished { get; }

        public bool Closed => Finished.IsCompleted;

        public int Lines => Volatile.Read(ref _lines);

        public string Text
        {
            get
            {
                lock (_text)
                {
                    return _text.ToString();
                }
            }
        }

        public async Task WaitForLinesAsync(int count, TimeSpan within)
        {
            var deadline = Stopwatch.StartNew();
            while (Lines < count && !Closed && deadline.Elapsed < within)
            {
                await Task.Delay(5);
            }
        }

        private async Task ReadAsync(Socket socket)
        {
            var buffer = new byte[16 * 1024];
            while (true)
            {
                int read;
                try
                {
                    read = await socket.ReceiveAsync(buffer, SocketFlags.None);
                }
                catch (Exception e) when (e is SocketException or ObjectDisposedException)
                {
                    return;
                }

                if (read == 0)
                {
                    return;
                }

                lock (_text)
                {
                    if (_text.Length < MaxKept)
                    {
                        _text.Append(Encoding.Latin1.GetString(buffer, 0, read));
                    }
                }

                Interlocked.Add(ref _lines, buffer.AsSpan(0, read).Count((byte)'\n'));
            }
        }
    }
}
