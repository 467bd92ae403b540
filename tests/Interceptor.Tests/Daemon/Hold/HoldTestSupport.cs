using System.Net;
using System.Text;
using Interceptor.Daemon.Hold;
using Interceptor.Smtp.Data;
using Interceptor.Smtp.Session;

namespace Interceptor.Tests.Daemon.Hold;

/// <summary>The real disk, with every operation written down in order (the fsync order is the store's promise).</summary>
internal sealed class RecordingDisk : IHoldDisk
{
    public List<string> Operations { get; } = [];

    public async Task WriteFileAsync(string path, Func<Stream, CancellationToken, Task> write, CancellationToken token)
    {
        await HoldDisk.Instance.WriteFileAsync(path, write, token);
        Operations.Add($"write+fsync {Path.GetFileName(path)}");
    }

    public void Move(string source, string destination)
    {
        HoldDisk.Instance.Move(source, destination);
        Operations.Add($"rename {Path.GetFileName(source)} {Path.GetFileName(destination)}");
    }

    public void SyncDirectory(string directory)
    {
        HoldDisk.Instance.SyncDirectory(directory);
        Operations.Add("fsync directory");
    }

    public void Delete(string path)
    {
        HoldDisk.Instance.Delete(path);
        Operations.Add($"delete {Path.GetFileName(path)}");
    }
}

/// <summary>A delivery that answers from a script and keeps what it was given.</summary>
internal sealed class ScriptedDelivery : IHeldDelivery
{
    public Queue<DeliveryOutcome> Answers { get; } = new();

    public List<(HeldMessage Held, string Message)> Attempts { get; } = [];

    public async Task<DeliveryOutcome> DeliverAsync(HeldMessage held, Stream message, CancellationToken token)
    {
        using var reader = new StreamReader(message, Encoding.ASCII);
        Attempts.Add((held, await reader.ReadToEndAsync(token)));
        return Answers.Count > 0 ? Answers.Dequeue() : new DeliveryOutcome(DeliveryKind.Delivered, "250 2.0.0 ok", "192.0.2.25:25");
    }
}

internal sealed class BytesSpool(string text) : IMessageSpool
{
    private readonly byte[] _bytes = Encoding.ASCII.GetBytes(text);

    public long Length => _bytes.Length;

    public ValueTask AppendAsync(ReadOnlyMemory<byte> bytes, CancellationToken token) => throw new NotSupportedException();

    public Stream OpenRead() => new MemoryStream(_bytes, writable: false);

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}

internal static class HoldSamples
{
    public const string Body = "Subject: hi\r\n\r\n..dot-stuffed line\r\nbye\r\n";

    public static MessageContext Message(string? id = null, uint uid = 1001, string user = "alice") => new(
        new ConnectionOrigin(uid, user, new IPEndPoint(IPAddress.Loopback, 40000), new IPEndPoint(IPAddress.Parse("192.0.2.25"), 25)),
        id ?? Guid.CreateVersion7().ToString("N"),
        "alice@example.com",
        ["bob@example.net", "carol@example.org"]);

    public static string TemporaryDirectory()
    {
        var directory = Directory.CreateTempSubdirectory("hold-test-").FullName;
        File.SetUnixFileMode(directory, HoldDirectory.Mode);
        return directory;
    }
}
