using System.Text;
using Interceptor.Daemon.Hold;

namespace Interceptor.Tests.Daemon.Hold;

[TestFixture]
public sealed class FileSpoolsTests
{
    [Test]
    public async Task A_spool_is_a_private_file_read_back_whole_and_gone_when_disposed_and_strays_are_removed_at_start()
    {
        var directory = Path.Combine(HoldSamples.TemporaryDirectory(), "spool");
        try
        {
            Directory.CreateDirectory(directory);
            await File.WriteAllTextAsync(Path.Combine(directory, "stale.spool"), "left by a killed daemon");
            var spools = new FileSpools(directory);
            Assert.That(Directory.EnumerateFiles(directory), Is.Empty, "stale spools are removed");

            var message = HoldSamples.Message();
            var spool = await spools.CreateAsync(message, CancellationToken.None);
            await spool.AppendAsync(Encoding.ASCII.GetBytes("Subject: a\r\n"), CancellationToken.None);
            await spool.AppendAsync(Encoding.ASCII.GetBytes("\r\nbody\r\n"), CancellationToken.None);
            var file = Path.Combine(directory, message.TransactionId + ".spool");
            Assert.That(File.GetUnixFileMode(file), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite));
            Assert.That(spool.Length, Is.EqualTo(20));
            using (var reader = new StreamReader(spool.OpenRead(), Encoding.ASCII))
            {
                Assert.That(await reader.ReadToEndAsync(), Is.EqualTo("Subject: a\r\n\r\nbody\r\n"));
            }

            await spool.DisposeAsync();
            Assert.That(File.Exists(file), Is.False);
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(directory)!, recursive: true);
        }
    }
}
