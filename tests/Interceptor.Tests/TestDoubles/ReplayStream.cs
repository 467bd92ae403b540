using Interceptor.Smtp.Upstream;

namespace Interceptor.Tests.TestDoubles;

/// <summary>
/// A duplex stream that plays the upstream's side of a <see cref="ScriptedDialogue"/>: reads return the upstream's
/// bytes only once everything it expected before them was written, and every write must be exactly what comes next.
/// A client that writes something else, or waits for a reply the upstream is still waiting to be asked for, is a
/// <see cref="Deviation"/> (reported at once, and by <see cref="AssertPlayedOut"/>): the test fails rather than hangs.
/// </summary>
internal sealed class ReplayStream(ScriptedDialogue dialogue, int readChunk = int.MaxValue) : Stream
{
    private readonly Lock _gate = new();
    private readonly IReadOnlyList<ScriptedDialogue.Step> _steps = dialogue.Steps;
    private int _step;

    // How far into the current step's bytes the client (writes) or we (reads) got.
    private int _offset;
    private readonly List<byte> _message = [];
    private readonly List<string> _messages = [];
    private readonly System.Text.StringBuilder _unanswered = new();

    /// <summary>What went against the script, if anything.</summary>
    public string? Deviation { get; private set; }

    public bool Disposed { get; private set; }

    /// <summary>What the client wrote after the upstream fell silent.</summary>
    public string Unanswered
    {
        get
        {
            lock (_gate)
            {
                return _unanswered.ToString();
            }
        }
    }

    /// <summary>The data of each <see cref="ScriptedDialogue.ClientMessage"/> step, end marker included.</summary>
    public IReadOnlyList<string> Messages
    {
        get
        {
            lock (_gate)
            {
                return [.. _messages];
            }
        }
    }

    /// <summary>True when what comes next is the upstream speaking or closing: a poll would see input.</summary>
    public bool UpstreamSpeaksNext
    {
        get
        {
            lock (_gate)
            {
                return _step < _steps.Count && _steps[_step].Kind is ScriptedDialogue.StepKind.Server or ScriptedDialogue.StepKind.Close;
            }
        }
    }

    /// <summary>The steps not played yet.</summary>
    public IReadOnlyList<ScriptedDialogue.Step> Remaining
    {
        get
        {
            lock (_gate)
            {
                return [.. _steps.Skip(_step)];
            }
        }
    }

    public override bool CanRead => true;

    public override bool CanWrite => true;

    public override bool CanSeek => false;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    /// <summary>Fails the test when the client deviated, or when the script was not played to its end (a close or silence may remain).</summary>
    public void AssertPlayedOut()
    {
        Assert.That(Deviation, Is.Null, "the client deviated from the recorded dialogue");
        Assert.That(
            Remaining.Where(s => s.Kind is ScriptedDialogue.StepKind.Server or ScriptedDialogue.StepKind.Client).Select(s => s.ToString()),
            Is.Empty,
            "steps of the dialogue never played");
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Disposed, this);
        ScriptedDialogue.StepKind kind;
        lock (_gate)
        {
            kind = _step < _steps.Count ? _steps[_step].Kind : ScriptedDialogue.StepKind.Close;
            if (kind == ScriptedDialogue.StepKind.Server)
            {
                var bytes = _steps[_step].Bytes;
                var count = Math.Min(Math.Min(buffer.Length, readChunk), bytes.Length - _offset);
                bytes.AsSpan(_offset, count).CopyTo(buffer.Span);
                Advance(count);
                return count;
            }

            if (kind is ScriptedDialogue.StepKind.Client or ScriptedDialogue.StepKind.Message)
            {
                Deviate($"the client waits for a reply while the upstream waits for {_steps[_step]}");
            }
        }

        if (kind == ScriptedDialogue.StepKind.Close)
        {
            return 0;
        }

        // Silence, or a client that waits out of turn: nothing ever arrives; only cancellation (a timeout) ends the wait.
        await Task.Delay(Timeout.Infinite, cancellationToken);
        return 0;
    }

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Disposed, this);
        lock (_gate)
        {
            var data = buffer.Span;
            while (data.Length > 0)
            {
                if (_step >= _steps.Count || _steps[_step].Kind == ScriptedDialogue.StepKind.Close)
                {
                    throw new IOException("Broken pipe (the scripted upstream closed the connection)");
                }

                var step = _steps[_step];
                if (step.Kind == ScriptedDialogue.StepKind.Silence)
                {
                    _unanswered.Append(System.Text.Encoding.UTF8.GetString(data));
                    break;
                }

                if (step.Kind == ScriptedDialogue.StepKind.Message)
                {
                    data = TakeMessageBytes(data);
                    continue;
                }

                if (step.Kind != ScriptedDialogue.StepKind.Client)
                {
                    Deviate($"the client wrote \"{ScriptedDialogue.Printable(data)}\" where the dialogue has {step}");
                    throw new IOException("unexpected write to the scripted upstream");
                }

                var expected = step.Bytes.AsSpan(_offset);
                var count = Math.Min(expected.Length, data.Length);
                if (!data[..count].SequenceEqual(expected[..count]))
                {
                    Deviate($"the client wrote \"{ScriptedDialogue.Printable(data)}\" where the dialogue expects {step} (from byte {_offset})");
                    throw new IOException("unexpected write to the scripted upstream");
                }

                Advance(count);
                data = data[count..];
            }
        }

        return ValueTask.CompletedTask;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer, offset, count, CancellationToken.None).GetAwaiter().GetResult();

    public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer, offset, count, CancellationToken.None).GetAwaiter().GetResult();

    public override void Flush()
    {
    }

    public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        Disposed = true;
        base.Dispose(disposing);
    }

    /// <summary>Message bytes up to the end marker; the rest of <paramref name="data"/> belongs to the next steps.</summary>
    private ReadOnlySpan<byte> TakeMessageBytes(ReadOnlySpan<byte> data)
    {
        var taken = 0;
        while (taken < data.Length)
        {
            _message.Add(data[taken++]);
            if (_message.Count >= 5 && System.Text.Encoding.ASCII.GetString([.. _message.TakeLast(5)]) == "\r\n.\r\n")
            {
                _messages.Add(System.Text.Encoding.UTF8.GetString([.. _message]));
                _message.Clear();
                _step++;
                _offset = 0;
                break;
            }
        }

        return data[taken..];
    }

    private void Advance(int count)
    {
        _offset += count;
        if (_offset == _steps[_step].Bytes.Length)
        {
            _step++;
            _offset = 0;
        }
    }

    private void Deviate(string what)
    {
        Deviation ??= what;
        TestContext.Progress.WriteLine("replay: " + what);
    }
}

/// <summary>A transport over a <see cref="ReplayStream"/>, recording whether it was aborted.</summary>
internal sealed class ReplayTransport(ReplayStream stream) : IUpstreamTransport
{
    /// <summary>When set, what a poll sees regardless of the script (an upstream that closed just after the poll).</summary>
    public bool? PollOverride { get; set; }

    public ReplayStream Replay { get; } = stream;

    public Stream Stream => Replay;

    public bool Aborted { get; private set; }

    public bool HasUnaskedInput() => PollOverride ?? Replay.UpstreamSpeaksNext;

    public void Abort()
    {
        Aborted = true;
        Replay.Dispose();
    }

    public async ValueTask DisposeAsync() => await Replay.DisposeAsync();
}

/// <summary>
/// Hands out one scripted dialogue per connection, in order; a connection beyond the scripts is refused as a real
/// closed port would be. Records each connection for the test to inspect.
/// </summary>
internal sealed class ScriptedConnector(params ScriptedDialogue[] dialogues) : IUpstreamConnector
{
    /// <summary>The upstream the recorded dialogues are with, as a client's original destination.</summary>
    public static readonly System.Net.IPEndPoint Mx = new(System.Net.IPAddress.Parse("192.0.2.25"), 25);

    private readonly Queue<ScriptedDialogue> _dialogues = new(dialogues);

    public List<ReplayTransport> Connections { get; } = [];

    public int ReadChunk { get; init; } = int.MaxValue;

    public Task<IUpstreamTransport> ConnectAsync(System.Net.IPEndPoint endpoint, TimeSpan timeout, CancellationToken cancellationToken)
    {
        lock (_dialogues)
        {
            if (!_dialogues.TryDequeue(out var dialogue))
            {
                throw new UpstreamUnavailableException($"connect to {endpoint} failed: connection refused");
            }

            var transport = new ReplayTransport(new ReplayStream(dialogue, ReadChunk));
            Connections.Add(transport);
            return Task.FromResult<IUpstreamTransport>(transport);
        }
    }

    /// <summary>Every connection played its dialogue exactly.</summary>
    public void AssertPlayedOut()
    {
        foreach (var connection in Connections)
        {
            connection.Replay.AssertPlayedOut();
        }

        Assert.That(_dialogues, Is.Empty, "dialogues never connected to");
    }
}
