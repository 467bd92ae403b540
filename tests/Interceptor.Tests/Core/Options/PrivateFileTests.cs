using System.Diagnostics;
using Interceptor.Core.Options;

namespace Interceptor.Tests.Core.Options;

/// <summary>
/// The secret-file reader behind Relay.CredentialsFile and Metrics.BearerTokenFile reads no more than the size it saw:
/// a file that yields more (one written meanwhile, or a device that never ends) is refused, not read whole.
/// </summary>
[TestFixture]
public sealed class PrivateFileTests
{
    [Test]
    public void A_file_that_yields_more_than_its_size_is_refused_not_read_whole()
    {
        var dir = Directory.CreateTempSubdirectory("smtpi-private-").FullName;
        try
        {
            // /dev/zero's numbers, mode 0600 (the tests run as root): a file of size 0 that never ends.
            var zero = Path.Combine(dir, "zero");
            using (var mknod = Process.Start("mknod", ["-m", "600", zero, "c", "1", "5"]))
            {
                mknod.WaitForExit();
                Assert.That(mknod.ExitCode, Is.Zero, "mknod");
            }

            var error = Assert.Throws<PrivateFileException>(() => PrivateFile.ReadAllText(zero, "X.File", "the secret", "a secret file", 4096))!;

            Assert.That(error.Message, Is.EqualTo($"{zero}: grew while being read (past 0 bytes); check that nothing else writes it"));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
