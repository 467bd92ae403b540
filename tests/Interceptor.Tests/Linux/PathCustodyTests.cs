using System.Runtime.InteropServices;
using Interceptor.Linux;
using static Interceptor.Tests.Linux.ThreadCredentials;
using static Interceptor.Tests.Linux.ToolRun;

namespace Interceptor.Tests.Linux;

/// <summary>
/// Whether a fix printed for root to paste names a path nobody else can re-point: each directory's verdict is compared
/// with the kernel's, a thread that is nobody (the customer here) trying to move the entry a link would replace. The tests run as
/// root; their directory is root's entry in the sticky /tmp.
/// </summary>
[TestFixture]
public sealed partial class PathCustodyTests
{
    private const uint DaemonUid = 4243;   // the daemon's user, with no account: its own file may be fixed in place
    private string _directory = "";

    [SetUp]
    public void CreateDirectory()
    {
        _directory = Directory.CreateTempSubdirectory("smtpi-custody-").FullName;
        File.SetUnixFileMode(_directory, (UnixFileMode)0x1ED);
    }

    [TearDown]
    public void RemoveDirectory() => Directory.Delete(_directory, recursive: true);

    // A secret in a new directory of the given owner and mode under the test's own.
    private string FileIn(string name, int mode, string owner)
    {
        var directory = Directory.CreateDirectory(Path.Combine(_directory, name)).FullName;
        var file = Path.Combine(directory, "secret");
        File.WriteAllText(file, "s3cret");
        Run("chown", owner, directory);
        File.SetUnixFileMode(directory, (UnixFileMode)mode);
        return file;
    }

    // The kernel's verdict: whether a thread that is nobody in nogroup may move the entry aside, which is what swapping a
    // link in for it takes. Moved back at once.
    private static bool NobodyMayMove(string entry) => OnThreadOfItsOwn.Run("as nobody", () => BecomeNobodyIn(NoGroup), () =>
    {
        var aside = entry + ".aside";
        if (Rename(entry, aside) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            return errno is 1 or 13 ? false : throw new InvalidOperationException($"rename({entry}): errno {errno}"); // EPERM, EACCES
        }

        Assert.That(Rename(aside, entry), Is.Zero, "moved back");
        return true;
    });

    // ca.pem, root's link in the test's directory, to etc/shadow, root's file.
    private (string Link, string Target) RootsLinkToAStandInForShadow()
    {
        var target = Path.Combine(Directory.CreateDirectory(Path.Combine(_directory, "etc")).FullName, "shadow");
        File.WriteAllText(target, "root:x:");
        var link = Path.Combine(_directory, "ca.pem");
        File.CreateSymbolicLink(link, target);
        return (link, target);
    }

    [TestCase(0x1ED, "root", null, TestName = "{m}(root's 0755)")]
    [TestCase(0x1ED, "4243", "owner uid 4243, gid 0, mode 0755", TestName = "{m}(a 0755 of a uid without an account: the daemon's user is not trusted either)")]
    [TestCase(0x1ED, "nobody", "owner uid 65534 (nobody), gid 0, mode 0755", TestName = "{m}(another user's 0755)")]
    [TestCase(0x1FD, "root:nogroup", "owner uid 0 (root), gid 65534, mode 0775", TestName = "{m}(root's 0775: its group may write)")]
    [TestCase(0x1EF, "root", "owner uid 0 (root), gid 0, mode 0757", TestName = "{m}(root's 0757: others may write)")]
    public void A_directory_others_may_change_is_named(int mode, string owner, string? open)
    {
        var file = FileIn("dir", mode, owner);

        Assert.That(NobodyMayMove(file), Is.EqualTo(open is not null && owner != "4243"), "the kernel's verdict for nobody");
        Assert.That(PathCustody.OpenPlace(file), Is.EqualTo(open is null ? null : $"{Path.GetDirectoryName(file)} ({open})"));
    }

    [Test]
    public void In_a_sticky_directory_the_entry_on_the_path_decides()
    {
        // root's 1777, as /tmp: root's entry stays put, nobody's may be moved by nobody.
        var sticky = Directory.CreateDirectory(Path.Combine(_directory, "sticky")).FullName;
        File.SetUnixFileMode(sticky, (UnixFileMode)0x3FF);
        var roots = Path.Combine(Directory.CreateDirectory(Path.Combine(sticky, "roots")).FullName, "secret");
        File.WriteAllText(roots, "s3cret");
        var theirs = Directory.CreateDirectory(Path.Combine(sticky, "theirs")).FullName;
        Run("chown", "nobody", theirs);
        var inTheirs = Path.Combine(theirs, "secret");
        File.WriteAllText(inTheirs, "s3cret");

        Assert.That(NobodyMayMove(Path.GetDirectoryName(roots)!), Is.False, "the kernel: root's entry in a sticky directory");
        Assert.That(PathCustody.OpenPlace(roots), Is.Null);
        Assert.That(NobodyMayMove(theirs), Is.True, "the kernel: nobody's own entry");
        Assert.That(PathCustody.OpenPlace(inTheirs), Is.EqualTo($"{theirs} (owner uid 65534 (nobody), gid 0, mode 0755, in sticky {sticky})"));
    }

    [Test]
    public void A_link_is_judged_where_it_leads()
    {
        // A link in root's directory into nobody's: root's paste would go where nobody points it.
        var file = FileIn("theirs", 0x1ED, "nobody");
        var link = Path.Combine(_directory, "link");
        File.CreateSymbolicLink(link, file);

        Assert.That(PathCustody.OpenPlace(link), Is.EqualTo($"{Path.GetDirectoryName(file)} (owner uid 65534 (nobody), gid 0, mode 0755)"));
        Assert.That(PathCustody.OpenPlace(Path.Combine(_directory, "theirs", "..", "theirs", "secret")), Is.Not.Null);
    }

    [Test]
    public void A_directory_whose_acl_lets_another_user_write_shows_it_in_its_mode()
    {
        // root's 0755 plus "user:nobody:rwx": the ACL's mask, which must allow writing for that entry to, is the mode's group bits.
        var file = FileIn("acl", 0x1ED, "root");
        var directory = Path.GetDirectoryName(file)!;
        UserAccessTests.SetAccessAcl(directory, (0x01, 7, uint.MaxValue), (0x02, 7, Nobody), (0x04, 5, uint.MaxValue), (0x10, 7, uint.MaxValue), (0x20, 5, uint.MaxValue));

        Assert.That(NobodyMayMove(file), Is.True, "the kernel: the ACL lets nobody write");
        Assert.That(PathCustody.OpenPlace(file), Is.EqualTo($"{directory} (owner uid 0 (root), gid 0, mode 0775)"));
    }

    [Test]
    public void A_link_someone_else_made_is_open_wherever_it_lies()
    {
        // She made the link in her home; root moved it into its own directory (mv keeps a link a link, and its owner).
        var (link, target) = RootsLinkToAStandInForShadow();
        Assert.That(PathCustody.OpenPlace(link), Is.Null, "root's own link to root's file");
        Run("chown", "-h", "nobody", link);

        Assert.That(PathCustody.OpenPlace(link), Is.EqualTo($"{link} (owner uid 65534 (nobody), gid 0, mode 0777, a link whose owner chose where it leads)"));
    }

    [Test]
    public void A_file_with_a_second_name_is_open_in_a_sticky_directory_or_anywhere()
    {
        // A hard link someone made to root's file (fs.protected_hardlinks lets her link a file she may read and write;
        // with it off, any) is root's inode under a name she chose, in a directory this walk never sees.
        var sticky = Directory.CreateDirectory(Path.Combine(_directory, "sticky")).FullName;
        File.SetUnixFileMode(sticky, (UnixFileMode)0x3FF);
        var inSticky = Path.Combine(sticky, "ca.pem");
        File.WriteAllText(inSticky, "pem");
        var inRoots = FileIn("roots", 0x1ED, "root");
        Assert.That(PathCustody.OpenPlace(inSticky), Is.Null);
        Assert.That(PathCustody.OpenPlace(inRoots), Is.Null);
        Run("ln", inSticky, Path.Combine(_directory, "elsewhere"));
        Run("ln", inRoots, Path.Combine(_directory, "other"));

        Assert.That(PathCustody.OpenPlace(inSticky), Is.EqualTo($"{inSticky} (owner uid 0 (root), gid 0, mode 0644, 2 names: another may be someone else's)"));
        Assert.That(PathCustody.OpenPlace(inRoots), Is.EqualTo($"{inRoots} (owner uid 0 (root), gid 0, mode 0644, 2 names: another may be someone else's)"));
    }

    [Test]
    public void No_command_is_given_for_a_path_through_a_link_even_of_roots()
    {
        // cp -r of a customer's directory makes her links root's, each still leading where she chose, to a name she chose
        // (one with an escape in it reads as another path once escaped for the terminal): the command would go there.
        var (link, target) = RootsLinkToAStandInForShadow();

        Assert.That(PathCustody.OpenPlace(link), Is.Null, "nobody but root can change where it leads");
        Assert.That(PathCustody.Fix(link, $"chmod a+r {link}", "make it readable", DaemonUid), Is.EqualTo(
            $"no command is given, as {link} leads elsewhere, to {target}, which may not be the file meant; point the option at the file itself"));
        Assert.That(PathCustody.Fix(target, $"chmod a+r {target}", "make it readable", DaemonUid), Is.EqualTo($"run chmod a+r {target}"));
    }

    [Test]
    public void The_fix_is_a_command_only_where_nobody_else_can_re_point_the_path()
    {
        var safe = FileIn("safe", 0x1ED, "root");
        var open = FileIn("open", 0x1ED, "nobody");

        Assert.That(PathCustody.Fix(safe, $"chmod 600 {safe}", "give it mode 0600", DaemonUid), Is.EqualTo($"run chmod 600 {safe}"));
        Assert.That(PathCustody.Fix(open, $"chmod 600 {open}", "give it mode 0600", DaemonUid), Is.EqualTo(
            $"no command is given, as {Path.GetDirectoryName(open)} (owner uid 65534 (nobody), gid 0, mode 0755) may be changed by users other than root, who could put a link "
            + "there for a pasted command to follow; make the file anew from a copy you trust (moving or copying this one could carry such a link or access along) in a "
            + "directory only root may change, such as /etc/smtp-interceptor; give it mode 0600 and point the option at it"));
    }

    [Test]
    public void A_file_of_someone_elses_gets_no_command_in_place_the_daemons_own_does()
    {
        // Her file keeps a descriptor she opened before root's chown, to read what root writes next.
        var file = FileIn("files", 0x1ED, "root");
        Run("chown", "nobody", file);
        Assert.That(PathCustody.OpenPlace(file), Is.Null, "nobody can re-point the path");

        Assert.That(PathCustody.Fix(file, $"chown d {file}", "give it owner d and mode 0600", DaemonUid), Is.EqualTo(
            $"no command is given, as {file} belongs to uid 65534 (nobody), who keeps any access opened before a chown or chmod; make the file anew from a copy you "
            + "trust (moving or copying this one could carry such a link or access along) in a directory only root may change, such as /etc/smtp-interceptor; "
            + "give it owner d and mode 0600 and point the option at it"));
        Run("chown", DaemonUid.ToString(System.Globalization.CultureInfo.InvariantCulture), file);
        Assert.That(PathCustody.Fix(file, $"chmod 600 {file}", "give it mode 0600", DaemonUid), Is.EqualTo($"run chmod 600 {file}"));
    }

    [LibraryImport("libc", EntryPoint = "rename", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Rename(string from, string to);
}
