using System.Net.Sockets;
using System.Runtime.InteropServices;
using Interceptor.Linux;
using static Interceptor.Tests.Linux.ToolRun;

namespace Interceptor.Tests.Linux;

/// <summary>
/// The secret-file reader behind Relay.CredentialsFile and Metrics.BearerTokenFile: only a regular file of the daemon's
/// user's, shut to group and others, is read, and never more than the size it saw. The tests run as root, whose files
/// these are unless chowned; a daemon's uid other than 0 is that of nobody.
/// </summary>
[TestFixture]
public sealed partial class PrivateFileTests
{
    private const uint Nobody = 65534;
    private const string SandboxHint = " (under the packaged unit the daemon does not see /home, /root or /run/user, and has a /tmp and /var/tmp of its own: ProtectHome=yes, PrivateTmp=yes)";
    private const string TheFileAnew = "make the file anew from a copy you trust (moving or copying this one could carry such a link or access along) in a directory only root may change, such as /etc/smtp-interceptor; ";
    private const string Exposed = " (they may have already: change the secret as well)";
    private string _directory = "";

    [SetUp]
    public void CreateDirectory()
    {
        // 0755, as /etc is: a daemon of nobody's must be able to search it (PrivateFileTests.Directories).
        _directory = Directory.CreateTempSubdirectory("smtpi-private-").FullName;
        File.SetUnixFileMode(_directory, (UnixFileMode)0x1ED);
    }

    [TearDown]
    public void RemoveDirectory()
    {
        Directory.Delete(_directory, recursive: true);
    }

    private static string Read(string path, uint owner = 0) => PrivateFile.ReadAllText(path, owner, "X.File", "the secret", "a secret file", 4096);

    private static string Refusal(string path, uint owner = 0) => Assert.Throws<PrivateFileException>(() => Read(path, owner))!.Message;

    private string Write(string text, UnixFileMode mode = UnixFileMode.UserRead | UnixFileMode.UserWrite)
    {
        var path = Path.Combine(_directory, "secret");
        File.WriteAllText(path, text);
        File.SetUnixFileMode(path, mode);
        return path;
    }

    [Test]
    public void A_file_of_the_daemons_user_shut_to_others_is_read_without_a_byte_order_mark() =>
        Assert.That(Read(Write("\uFEFFs3cret\n")), Is.EqualTo("s3cret\n"));

    [TestCase(UnixFileMode.GroupRead)]
    [TestCase(UnixFileMode.OtherRead)]
    [TestCase(UnixFileMode.GroupWrite)]
    [TestCase(UnixFileMode.OtherExecute)]
    public void A_file_others_may_touch_is_refused_naming_the_file_and_its_mode(UnixFileMode extra)
    {
        var path = Write("s3cret", UnixFileMode.UserRead | UnixFileMode.UserWrite | extra);

        var message = Refusal(path);

        // Read bits open: the secret is out, and the message says so; write or execute bits alone gave nothing away.
        var access = (extra & (UnixFileMode.GroupRead | UnixFileMode.OtherRead)) != 0 ? "read the secret" + Exposed : "write or run it (check what it holds, or make it anew)";
        Assert.That(message, Does.StartWith(path + ": mode 06").And.EndWith($"lets others than the daemon's user {access}; run chmod 600 {path}"));
        Assert.That(message, Does.Not.Contain("s3cret"));
    }

    [Test]
    public void The_fix_quotes_a_path_the_shell_would_split_or_expand()
    {
        var path = Path.Combine(_directory, "relay logins;$(id)");
        File.WriteAllText(path, "s3cret");
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead);

        Assert.That(Refusal(path), Does.EndWith($"run chmod 600 '{path}'"));
    }

    [Test]
    public void A_file_in_a_directory_another_user_may_change_gets_no_command_to_paste()
    {
        // nobody (the customer) owns the directory: between the message and root's paste she could put a link to
        // /etc/shadow in the secret's place, and chmod and chown follow it.
        var theirs = Directory.CreateDirectory(Path.Combine(_directory, "theirs")).FullName;
        Run("chown", "nobody", theirs);
        var path = Path.Combine(theirs, "secret");
        File.WriteAllText(path, "s3cret");
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead);

        Assert.That(Refusal(path), Is.EqualTo(
            $"{path}: mode 0604 lets others than the daemon's user read the secret{Exposed}; no command is given, as {theirs} (owner uid {Nobody} (nobody), gid 0, mode 0755) "
            + "may be changed by users other than root, who could put a link there for a pasted command to follow; make the file anew from a copy you trust "
            + "(moving or copying this one could carry such a link or access along) in a directory only root may change, such as /etc/smtp-interceptor; give it owner root "
            + "and mode 0600 and point the option at it"));
        Assert.That(Refusal(path, Nobody), Does.Contain("no command is given"), "not even for the daemon's user's own directory: a daemon taken over could swap the link");
    }

    [Test]
    public void A_file_its_owner_may_not_read_is_refused_though_root_could() =>
        Assert.That(Refusal(Write("s3cret", UnixFileMode.UserWrite)), Does.EndWith(": mode 0200 does not let its owner, the daemon's user, read it; run chmod 600 " + Path.Combine(_directory, "secret")));

    [Test]
    public void A_file_of_another_user_is_refused_naming_both_and_no_command_to_chown_it_in_place()
    {
        // She keeps a descriptor she opened before root's chown, to read what root writes into the file next.
        var path = Write("s3cret");
        Run("chown", "nobody", path);

        Assert.That(Refusal(path, owner: 0), Is.EqualTo(
            $"{path}: is owned by uid {Nobody} (nobody), not by the daemon's user (uid 0 (root)), so its owner may read or change the secret (keep it out of directories the owner may write); "
            + $"no command is given, as {path} belongs to uid {Nobody} (nobody), who keeps any access opened before a chown or chmod; {TheFileAnew}give it owner root and mode 0600 and point the option at it"));
        Assert.That(Read(path, owner: Nobody), Is.EqualTo("s3cret"), "the same file for a daemon running as nobody");
    }

    [Test]
    public void A_file_of_roots_is_refused_for_a_daemon_that_is_not_root_as_it_could_not_read_it() =>
        Assert.That(Refusal(Write("s3cret"), owner: Nobody), Does.EndWith(
            $": is owned by uid 0 (root), which keeps the daemon's user (uid {Nobody} (nobody)) from reading it; run chown nobody {Path.Combine(_directory, "secret")}"));

    [Test]
    public void Every_problem_of_a_file_is_named_at_once_with_every_fix()
    {
        // root:root 0644, root's umask at work, for a daemon of nobody: one restart must be enough.
        var path = Write("s3cret", (UnixFileMode)0x1A4);

        Assert.That(Refusal(path, owner: Nobody), Is.EqualTo(
            $"{path}: is owned by uid 0 (root), not by the daemon's user (uid {Nobody} (nobody)), and mode 0644 lets others than the daemon's user read the secret{Exposed}; run chown nobody {path} && chmod 600 {path}"));
    }

    [Test]
    public void What_the_daemons_user_cannot_open_is_named_from_the_paths_own_status()
    {
        // The daemon is not root in the package: this thread, uid 0 without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, is
        // refused as it would be (EACCES), and the message still says why.
        var theirs = Write("s3cret");
        Run("chown", "nobody", theirs);
        var unreadable = Path.Combine(_directory, "unreadable");
        File.WriteAllText(unreadable, "s3cret");
        File.SetUnixFileMode(unreadable, UnixFileMode.UserWrite);
        var hidden = Directory.CreateDirectory(Path.Combine(_directory, "hidden"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute).FullName;
        var inside = Path.Combine(hidden, "token");
        File.WriteAllText(inside, "s3cret");
        File.SetUnixFileMode(inside, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        Run("chown", "nobody", hidden);

        var messages = ThreadCredentials.WithoutFileCapabilities(() => (Refusal(theirs), Refusal(unreadable), Refusal(inside), Refusal(theirs, owner: Nobody)));

        Assert.That(messages.Item1, Does.StartWith($"{theirs}: is owned by uid {Nobody} (nobody), not by the daemon's user (uid 0 (root)), so its owner may read or change the secret (keep it out of directories the owner may write); no command is given, as {theirs} belongs to uid {Nobody} (nobody)"));
        Assert.That(messages.Item2, Is.EqualTo($"{unreadable}: mode 0200 does not let its owner, the daemon's user, read it; run chmod 600 {unreadable}"));
        Assert.That(messages.Item3, Is.EqualTo($"{inside}: cannot be read: Permission denied; the daemon's user must be able to search every directory on the path{SandboxHint}"));
        Assert.That(messages.Item4, Is.EqualTo($"{theirs}: cannot be read by uid 0 (root) to check the rest, though its owner and mode are right for the daemon's user (uid {Nobody} (nobody)); run check-config as root or as that user"),
            "an admin without root checking for the daemon's user");
    }

    [Test]
    public void A_socket_is_not_a_file_though_it_cannot_be_opened()
    {
        var path = Path.Combine(_directory, "socket");
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        socket.Bind(new UnixDomainSocketEndPoint(path));
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);

        Assert.That(Refusal(path), Is.EqualTo($"{path}: is a socket, not a regular file; X.File must name a file"));
    }

    [Test]
    public void A_daemon_that_is_not_root_trusts_roots_file_only_when_it_opened_it_shut_to_others()
    {
        // This thread becomes the packaged daemon's kind: uid nobody, no capability in effect. root:root 0644 opens through
        // its loose mode, which the chmod would take away: both fixes at once. Root's 0600 file cannot be opened; with
        // CAP_DAC_READ_SEARCH (a drop-in's) it can, and is then read.
        File.SetUnixFileMode(_directory, (UnixFileMode)0x1ED);
        var loose = Write("s3cret", (UnixFileMode)0x1A4);
        var tight = Path.Combine(_directory, "tight");
        File.WriteAllText(tight, "t1ght");
        File.SetUnixFileMode(tight, UnixFileMode.UserRead | UnixFileMode.UserWrite);

        var (looseRefusal, tightRefusal, tightRead) = OnThreadOfItsOwn.Run("as nobody", ThreadCredentials.BecomeNobody, () =>
        {
            var refusals = (Refusal(loose, Nobody), Refusal(tight, Nobody));
            ThreadCredentials.ChangeEffectiveCapabilities(add: ThreadCredentials.DacReadSearch);
            return (refusals.Item1, refusals.Item2, Read(tight, Nobody));
        });

        Assert.That(looseRefusal, Is.EqualTo(
            $"{loose}: is owned by uid 0 (root), not by the daemon's user (uid {Nobody} (nobody)), and mode 0644 lets others than the daemon's user read the secret{Exposed}; run chown nobody {loose} && chmod 600 {loose}"));
        Assert.That(tightRefusal, Is.EqualTo($"{tight}: is owned by uid 0 (root), which keeps the daemon's user (uid {Nobody} (nobody)) from reading it; run chown nobody {tight}"));
        Assert.That(tightRead, Is.EqualTo("t1ght"));
    }

    [Test]
    public void A_symbolic_link_is_refused_even_to_a_good_file()
    {
        var target = Write("s3cret");
        var link = Path.Combine(_directory, "link");
        File.CreateSymbolicLink(link, target);

        Assert.That(Refusal(link), Is.EqualTo($"{link}: is a symbolic link; X.File must name the file itself"));
    }

    [Test]
    public void A_link_loop_among_the_directories_is_named_as_such_not_as_a_link_at_the_file()
    {
        File.CreateSymbolicLink(Path.Combine(_directory, "a"), Path.Combine(_directory, "b"));
        File.CreateSymbolicLink(Path.Combine(_directory, "b"), Path.Combine(_directory, "a"));
        var path = Path.Combine(_directory, "a", "secret");

        Assert.That(Refusal(path), Is.EqualTo($"{path}: cannot be read: Too many levels of symbolic links (a link among the directories on the path loops or leads through too many links)"));
    }

    [Test]
    public void A_fifo_is_refused_at_once_instead_of_waiting_for_a_writer()
    {
        var fifo = Path.Combine(_directory, "fifo");
        Run("mkfifo", "-m", "600", fifo);

        // Opened for reading without O_NONBLOCK, a FIFO blocks until someone opens it for writing: the daemon's start would hang.
        var read = Task.Run(() => Refusal(fifo));

        Assert.That(read.Wait(TimeSpan.FromSeconds(10)), Is.True, "the read still waits for a writer");
        Assert.That(read.Result, Is.EqualTo($"{fifo}: is a FIFO, not a regular file; X.File must name a file"));
    }

    [Test]
    public void A_device_or_a_directory_is_not_a_file()
    {
        var zero = Path.Combine(_directory, "zero");
        Run("mknod", "-m", "600", zero, "c", "1", "5");
        var directory = Directory.CreateDirectory(Path.Combine(_directory, "dir"), UnixFileMode.UserRead | UnixFileMode.UserExecute).FullName;

        Assert.That(Refusal(zero), Is.EqualTo($"{zero}: is a character device, not a regular file; X.File must name a file"));
        Assert.That(Refusal(directory), Is.EqualTo($"{directory}: is a directory, not a regular file; X.File must name a file"));
    }

    [Test]
    public void A_file_that_yields_more_than_its_size_is_refused_not_read_whole()
    {
        // A regular file of size 0, mode 0400 and root's (the tests run as root) that yields this process's environment.
        const string environ = "/proc/self/environ";

        Assert.That(Refusal(environ), Is.EqualTo($"{environ}: grew while being read (past 0 bytes); check that nothing else writes it"));
    }

    [Test]
    public void A_file_larger_than_its_kind_is_refused_by_size_and_a_missing_one_by_its_error()
    {
        var big = Write(new string('x', 4097));

        Assert.That(Refusal(big), Is.EqualTo($"{big}: 4097 bytes is more than a secret file holds (4096 at most)"));
        Assert.That(Refusal(Path.Combine(_directory, "missing")), Is.EqualTo($"{Path.Combine(_directory, "missing")}: cannot be read: No such file or directory{SandboxHint}"));
    }

    [Test]
    public void A_file_where_the_packaged_units_sandbox_hides_it_from_the_daemon_is_named_with_the_units_settings()
    {
        // Root's check found the file in /tmp; the daemon, with a /tmp of its own, does not. Elsewhere the error alone.
        var elsewhere = Path.Combine("/etc", Path.GetFileName(_directory) + "-missing");

        Assert.That(_directory, Does.StartWith("/tmp/"), "the temporary directory this test assumes");
        Assert.That(Refusal(Path.Combine(_directory, "missing")), Does.EndWith($": No such file or directory{SandboxHint}"));
        Assert.That(Refusal("/home/smtpi-no-such-user/token"), Is.EqualTo($"/home/smtpi-no-such-user/token: cannot be read: No such file or directory{SandboxHint}"));
        Assert.That(Refusal(elsewhere), Is.EqualTo($"{elsewhere}: cannot be read: No such file or directory"));
    }
}
