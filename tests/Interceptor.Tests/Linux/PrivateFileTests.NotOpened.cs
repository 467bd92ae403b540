using System.Runtime.InteropServices;
using Interceptor.Linux;
using Microsoft.Win32.SafeHandles;
using Tmds.Linux;
using static Interceptor.Tests.Linux.ToolRun;

namespace Interceptor.Tests.Linux;

/// <summary>
/// What is not a regular file is refused without being opened for reading: a device's driver never runs its open (a
/// watchdog's would arm the timer), a FIFO never gains a reader. inotify's IN_OPEN shows whether the reader opened it.
/// Kernels before 5.12 or so report IN_OPEN for a descriptor that only locates a file (O_PATH) as well, later ones do
/// not: what one such open reports here is measured first and allowed for.
/// </summary>
public sealed partial class PrivateFileTests
{
    private const uint InOpen = 0x20;

    [Test]
    public void A_device_or_a_fifo_is_refused_without_being_opened_a_file_is_opened()
    {
        var device = Path.Combine(_directory, "null");
        Run("mknod", "-m", "600", device, "c", "1", "3");
        var fifo = Path.Combine(_directory, "fifo");
        Run("mkfifo", "-m", "600", fifo);
        var file = Write("s3cret");

        var locating = OpensWhile(file, () => Close(Open(file, LibC.O_PATH | LibC.O_CLOEXEC)));

        Assert.That(OpensWhileReading(device, expectRefusal: true), Is.EqualTo(locating), "the device was opened");
        Assert.That(OpensWhileReading(fifo, expectRefusal: true), Is.EqualTo(locating), "the FIFO was opened");
        Assert.That(OpensWhileReading(file, expectRefusal: false), Is.EqualTo(locating + 1), "the watch sees a file's one open for reading");
    }

    [Test]
    public void What_is_read_is_the_file_judged_though_another_is_swapped_in_at_the_path_meanwhile()
    {
        // Between the first look and the read, another file of the same owner and mode, then a device, is renamed over
        // the path: the judged file's contents are read, and the device is never opened.
        var path = Write("judged");
        var other = Path.Combine(_directory, "other");
        File.WriteAllText(other, "swapped in");
        File.SetUnixFileMode(other, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var device = Path.Combine(_directory, "device");
        Run("mknod", "-m", "600", device, "c", "1", "3");

        var read = WhileSwapping(other, path, () => Read(path));
        var atThePath = File.ReadAllText(path);
        Run("rm", "-f", path);
        File.WriteAllText(path, "judged again");
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var opens = OpensWhile(device, () => Assert.That(WhileSwapping(device, path, () => Read(path)), Is.EqualTo("judged again")));

        Assert.That(read, Is.EqualTo("judged"));
        Assert.That(atThePath, Is.EqualTo("swapped in"), "the swap happened");
        Assert.That(opens, Is.Zero, "the device swapped in was opened");
    }

    private static string WhileSwapping(string from, string to, Func<string> read)
    {
        PrivateFile.AfterLocating = _ => File.Move(from, to, overwrite: true);
        try
        {
            return read();
        }
        finally
        {
            PrivateFile.AfterLocating = null;
        }
    }

    private static int OpensWhileReading(string path, bool expectRefusal) => OpensWhile(path, () =>
    {
        if (expectRefusal)
        {
            Assert.Throws<PrivateFileException>(() => Read(path));
        }
        else
        {
            Read(path);
        }
    });

    // The IN_OPEN events on the path while the action ran.
    private static int OpensWhile(string path, Action action)
    {
        var watch = InotifyInit1(LibC.O_NONBLOCK | LibC.O_CLOEXEC);
        Assert.That(watch, Is.GreaterThanOrEqualTo(0), $"inotify_init1: errno {Marshal.GetLastPInvokeError()}");
        using (new SafeFileHandle(watch, ownsHandle: true))
        {
            Assert.That(InotifyAddWatch(watch, path, InOpen), Is.GreaterThanOrEqualTo(0), $"inotify_add_watch: errno {Marshal.GetLastPInvokeError()}");
            action();
            return OpenEvents(watch);
        }
    }

    // struct inotify_event: wd, mask, cookie, len (4 bytes each), then len bytes of name (none for a watched file).
    private static unsafe int OpenEvents(int watch)
    {
        var buffer = new byte[4096];
        var opens = 0;
        fixed (byte* start = buffer)
        {
            for (long n; (n = ReadFd(watch, start, buffer.Length)) > 0;)
            {
                for (var at = 0; at < n; at += 16 + BitConverter.ToInt32(buffer, at + 12))
                {
                    opens += (BitConverter.ToUInt32(buffer, at + 4) & InOpen) != 0 ? 1 : 0;
                }
            }
        }

        return opens;
    }

    [LibraryImport("libc", EntryPoint = "inotify_init1", SetLastError = true)]
    private static partial int InotifyInit1(int flags);

    [LibraryImport("libc", EntryPoint = "inotify_add_watch", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int InotifyAddWatch(int fd, string path, uint mask);

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Open(string path, int flags);

    // Asserted: a descriptor left open would hold the temporary directory.
    private static void Close(int fd) => Assert.That(fd >= 0 && CloseFd(fd) == 0, Is.True, $"open or close: errno {Marshal.GetLastPInvokeError()}");

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int CloseFd(int fd);

    [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
    private static unsafe partial long ReadFd(int fd, byte* buffer, long count);
}
