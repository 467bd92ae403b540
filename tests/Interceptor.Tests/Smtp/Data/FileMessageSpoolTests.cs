using System.Net;
using Interceptor.Smtp.Data;
using Interceptor.Smtp.Session;

namespace Interceptor.Tests.Smtp.Data;

/// <summary>Issue 16: the spool a scanning pipeline writes whole messages to.</summary>
[TestFixture]
public class FileMessageSpoolTests
{
    private string _directory = "";

    [SetUp]
    public void CreateDirectory() => _directory = Path.Combine(Path.GetTempPath(), $"spool-test-{Guid.NewGuid():N}", "spool");

    [TearDown]
    public void RemoveDirectory() => Directory.Delete(Path.GetDirectoryName(_directory)!, recursive: true);

    private static MessageContext Message() =>
        new(new ConnectionOrigin(1001, "alice", new IPEndPoint(IPAddress.Loopback, 40000), new IPEndPoint(IPAddress.Loopback, 25)), "t1", "a@b", ["c@d"]);

    [Test]
    public async Task A_small_message_stays_in_memory_and_reads_back_whole()
    {
        var factory = new FileMessageSpoolFactory(_directory, maxBytes: 1 << 20, memoryBytes: 1024);
        await using var spool = await factory.CreateAsync(Message(), CancellationToken.None);

        await spool.AppendAsync("Subject: a\r\n"u8.ToArray(), CancellationToken.None);
        await spool.AppendAsync("\r\nbody\r\n"u8.ToArray(), CancellationToken.None);

        Assert.That(((FileMessageSpool)spool).OnDisk, Is.False);
        Assert.That(await ReadAllAsync(spool), Is.EqualTo("Subject: a\r\n\r\nbody\r\n"u8.ToArray()));
    }

    [Test]
    public async Task A_large_message_goes_to_an_unlinked_file_in_a_private_directory_and_reads_back_whole()
    {
        var factory = new FileMessageSpoolFactory(_directory, maxBytes: 1 << 20, memoryBytes: 1024);
        var bytes = new byte[300_000];
        new Random(7).NextBytes(bytes);
        await using var spool = await factory.CreateAsync(Message(), CancellationToken.None);

        for (var at = 0; at < bytes.Length; at += 777)
        {
            await spool.AppendAsync(bytes.AsMemory(at, Math.Min(777, bytes.Length - at)), CancellationToken.None);
        }

        Assert.That(((FileMessageSpool)spool).OnDisk, Is.True);
        Assert.That(spool.Length, Is.EqualTo(bytes.Length));
        Assert.That(await ReadAllAsync(spool), Is.EqualTo(bytes), "read twice: the stage, then the replay");
        Assert.That(await ReadAllAsync(spool), Is.EqualTo(bytes));
        Assert.That(Directory.GetFileSystemEntries(_directory), Is.Empty, "unlinked as soon as it is open: nothing to find, nothing left behind");
        Assert.That(File.GetUnixFileMode(_directory), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute));
    }

    [Test]
    public async Task An_existing_directory_is_made_private_again()
    {
        Directory.CreateDirectory(_directory);
        File.SetUnixFileMode(_directory, (UnixFileMode)0b111_101_101);

        _ = new FileMessageSpoolFactory(_directory, maxBytes: 1 << 20);

        Assert.That(File.GetUnixFileMode(_directory), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute));
        await Task.CompletedTask;
    }

    [Test]
    public async Task No_spool_grows_past_the_largest_message_size()
    {
        var factory = new FileMessageSpoolFactory(_directory, maxBytes: 2000, memoryBytes: 1024);
        await using var spool = await factory.CreateAsync(Message(), CancellationToken.None);
        await spool.AppendAsync(new byte[1500], CancellationToken.None);

        var error = Assert.ThrowsAsync<IOException>(async () => await spool.AppendAsync(new byte[501], CancellationToken.None));

        Assert.That(error!.Message, Does.Contain("message spool full (2000 bytes)"));
        Assert.That(spool.Length, Is.EqualTo(1500));
    }

    private static async Task<byte[]> ReadAllAsync(IMessageSpool spool)
    {
        await using var stream = spool.OpenRead();
        using var copy = new MemoryStream();
        await stream.CopyToAsync(copy);
        return copy.ToArray();
    }
}
