using System.IO.Pipelines;
using System.Net;
using System.Text;
using Interceptor.Core.Options;
using Interceptor.Smtp.Data;
using Interceptor.Smtp.Session;
using Interceptor.Smtp.Upstream;
using Interceptor.Tests.TestDoubles;

namespace Interceptor.Tests.Smtp.Session;

/// <summary>
/// One <see cref="InboundSession"/> whose client is an in-memory duplex stream (no socket on the client side), with
/// explicit time limits so each timeout shows in a fraction of a second, and a reply channel that can be made small
/// so a client that does not read blocks the session's writes at once.
/// </summary>
internal sealed class MemorySession : IAsyncDisposable
{
    private readonly Pipe _toSession = new();
    private readonly Pipe _toClient;
    private readonly Stream _clientOut;
    private readonly WireReader _replies;
    private readonly CancellationTokenSource _shutdown = new();

    private MemorySession(long replyBuffer, SuspensionOptions suspension)
    {
        _toClient = new Pipe(new PipeOptions(pauseWriterThreshold: replyBuffer, resumeWriterThreshold: replyBuffer / 2, useSynchronizationContext: false));
        _clientOut = _toSession.Writer.AsStream();
        _replies = new WireReader(_toClient.Reader.AsStream());
        Policy = new PolicyFixture(RelayHarness.Options.Limits, suspension, logger: Log);
    }

    /// <summary>Generous limits: a test shortens the one it shows.</summary>
    public static readonly TimeoutLimits Relaxed = new(
        Idle: TimeSpan.FromSeconds(5),
        CommandLine: TimeSpan.FromSeconds(5),
        Session: TimeSpan.FromSeconds(30),
        DataRateGrace: TimeSpan.FromSeconds(30),
        MinDataBytesPerSecond: 0);

    public RecordingLogger Log { get; } = new();

    public RecordingRecorder Recorder { get; } = new();

    /// <summary>The policy logs to <see cref="Log"/> too, as in the daemon both reach the journal.</summary>
    public PolicyFixture Policy { get; }

    public Task Session { get; private set; } = Task.CompletedTask;

    /// <param name="options">The relay's options (its upstream timeouts); <see cref="RelayHarness.Options"/> when null.</param>
    public static MemorySession Start(IPEndPoint upstream, TimeoutLimits? limits = null, MessagePipeline? pipeline = null, long replyBuffer = 1024 * 1024, InterceptorOptions? options = null)
    {
        var harness = new MemorySession(replyBuffer, (options ?? RelayHarness.Options).Suspension);
        harness.Session = harness.RunAsync(upstream, limits ?? Relaxed, pipeline, options ?? RelayHarness.Options);
        return harness;
    }

    private async Task RunAsync(IPEndPoint upstream, TimeoutLimits limits, MessagePipeline? pipeline, InterceptorOptions options)
    {
        await Task.Yield();
        await using var upstreams = new UpstreamConnectionCache(UpstreamSettings.From(options.Relay));
        var origin = new ConnectionOrigin(RelayHarness.Uid, RelayHarness.User, new IPEndPoint(IPAddress.Loopback, 40000), upstream);
        await using var stream = new DuplexStream(_toSession.Reader.AsStream(), _toClient.Writer.AsStream());
        await using var session = new InboundSession(stream, origin, options, Recorder, Log, Policy.Policy, upstreams, limits) { Pipeline = pipeline };
        await session.RunAsync(_shutdown.Token);
    }

    public async Task SendAsync(string text)
    {
        using var timeout = new CancellationTokenSource(SmtpTestClient.Timeout);
        await _clientOut.WriteAsync(Encoding.UTF8.GetBytes(text), timeout.Token);
    }

    public async Task<SmtpTestReply> ReadReplyAsync(TimeSpan? within = null)
    {
        using var timeout = new CancellationTokenSource(within ?? SmtpTestClient.Timeout);
        var lines = new List<string>();
        while (true)
        {
            var raw = await _replies.ReadLineAsync(timeout.Token) ?? throw new EndOfStreamException($"the session closed after [{string.Join(" | ", lines)}]");
            var line = WireReader.Text(raw);
            lines.Add(line);
            if (line.Length < 4 || line[3] != '-')
            {
                return new SmtpTestReply(int.Parse(line[..3], System.Globalization.CultureInfo.InvariantCulture), lines);
            }
        }
    }

    public async Task<SmtpTestReply> CommandAsync(string line)
    {
        await SendAsync(line + "\r\n");
        return await ReadReplyAsync();
    }

    /// <summary>The greeting, then EHLO.</summary>
    public async Task GreetAsync()
    {
        Assert.That((await ReadReplyAsync()).Code, Is.EqualTo(220));
        Assert.That((await CommandAsync("EHLO web1.customer.test")).Code, Is.EqualTo(250));
    }

    /// <summary>Greeted, MAIL and one RCPT accepted, DATA answered 354.</summary>
    public async Task StartDataAsync()
    {
        await GreetAsync();
        Assert.That((await CommandAsync("MAIL FROM:<alice@customer.test>")).Code, Is.EqualTo(250));
        Assert.That((await CommandAsync("RCPT TO:<bob@example.net>")).Code, Is.EqualTo(250));
        Assert.That((await CommandAsync("DATA")).Code, Is.EqualTo(354));
    }

    /// <summary>Every reply until the session closes its side.</summary>
    public async Task<IReadOnlyList<SmtpTestReply>> ReadToEndAsync()
    {
        var replies = new List<SmtpTestReply>();
        while (true)
        {
            try
            {
                replies.Add(await ReadReplyAsync());
            }
            catch (EndOfStreamException)
            {
                return replies;
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _toSession.Writer.CompleteAsync();
        await _shutdown.CancelAsync();
        await Session.WaitAsync(TimeSpan.FromSeconds(10)).ContinueWith(_ => { }, TaskScheduler.Default);
        _shutdown.Dispose();
        if (Session.IsFaulted)
        {
            await Session;
        }
    }

    /// <summary>Reads from one pipe, writes to the other: the session's view of its client.</summary>
    private sealed class DuplexStream(Stream input, Stream output) : Stream
    {
        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => input.ReadAsync(buffer, cancellationToken);

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => output.WriteAsync(buffer, cancellationToken);

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => input.ReadAsync(buffer, offset, count, cancellationToken);

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => output.WriteAsync(buffer, offset, count, cancellationToken);

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                input.Dispose();
                output.Dispose();
            }

            base.Dispose(disposing);
        }
    }
}
