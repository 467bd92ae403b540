using System.Runtime.InteropServices;
using Interceptor.Linux;
using static Interceptor.Tests.Linux.ThreadCredentials;
using static Interceptor.Tests.Linux.ToolRun;

namespace Interceptor.Tests.Linux;

/// <summary>
/// What root's check-config judges for the daemon's user: every directory the kernel's lookup of a path searches, and the
/// file's read bit. Each verdict is compared with the kernel's own: a thread that is nobody, in the groups given, opens
/// the same path. The tests run as root; nobody (65534) is in nogroup (65534) alone.
/// </summary>
[TestFixture]
public sealed partial class UserAccessTests
{
    private const uint UnknownGroup = 4242;
    private string _directory = "";

    [SetUp]
    public void CreateDirectory()
    {
        _directory = Directory.CreateTempSubdirectory("smtpi-access-").FullName;
        File.SetUnixFileMode(_directory, (UnixFileMode)0x1ED);
    }

    [TearDown]
    public void RemoveDirectory() => Directory.Delete(_directory, recursive: true);

    private static UserAccess NobodysAccess(params uint[] extraGroups) => UserAccess.For(Nobody, extraGroups) ?? throw new AssertionException("no account for nobody");

    // A file nobody's and readable by it (0600) in a new directory of the given owner, group and mode.
    private string FileInside(string name, int mode, string ownerAndGroup)
    {
        var directory = Directory.CreateDirectory(Path.Combine(_directory, name)).FullName;
        var file = Path.Combine(directory, "token");
        File.WriteAllText(file, "s3cret");
        File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        Run("chown", "nobody", file);
        Run("chown", ownerAndGroup, directory);
        File.SetUnixFileMode(directory, (UnixFileMode)mode);
        return file;
    }

    // The kernel's verdict: true when a thread that is nobody in these groups may open the file for reading. By the
    // system call, as PrivateFile opens: .NET's File methods take ".." from the text of a path before the kernel sees it.
    private static bool KernelLets(string path, params uint[] groups) => OnThreadOfItsOwn.Run("as nobody", () => BecomeNobodyIn(groups), () =>
    {
        var fd = Open(path, 0x80000); // O_RDONLY | O_CLOEXEC
        if (fd < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            return errno == 13 ? false : throw new InvalidOperationException($"open({path}): errno {errno}"); // EACCES
        }

        _ = Close(fd);
        return true;
    });

    [TestCase(0x1C0, "root:root", "owner uid 0 (root), gid 0, mode 0700", TestName = "{m}(root's 0700: others may not search)")]
    [TestCase(0x1C9, "root:root", null, TestName = "{m}(root's 0711: others may search)")]
    [TestCase(0x1C8, "root:nogroup", null, TestName = "{m}(0710 of nobody's group: its group may search)")]
    [TestCase(0x1C1, "root:nogroup", "owner uid 0 (root), gid 65534, mode 0701", TestName = "{m}(0701 of nobody's group: the group's bits apply, not the others')")]
    [TestCase(0x39, "nobody:root", "owner uid 65534 (nobody), gid 0, mode 0071", TestName = "{m}(nobody's 0071: the owner's bits apply)")]
    [TestCase(0x40, "nobody:root", null, TestName = "{m}(nobody's 0100: its owner may search)")]
    public void Each_directory_is_judged_as_the_kernel_judges_it(int mode, string ownerAndGroup, string? denied)
    {
        var file = FileInside("dir", mode, ownerAndGroup);

        Assert.That(KernelLets(file, NoGroup), Is.EqualTo(denied is null), "the kernel's verdict for nobody");
        Assert.That(NobodysAccess().SearchBarrier(file), Is.EqualTo(denied is null ? null : $"{Path.GetDirectoryName(file)} ({denied})"));
    }

    [Test]
    public void A_group_the_unit_adds_counts_as_the_kernel_counts_it()
    {
        var file = FileInside("group", 0x1C8, $"root:{UnknownGroup}");

        Assert.That(KernelLets(file, NoGroup), Is.False, "nobody in nogroup alone");
        Assert.That(KernelLets(file, NoGroup, UnknownGroup), Is.True, $"nobody with group {UnknownGroup} added");
        Assert.That(NobodysAccess().SearchBarrier(file), Does.EndWith($"(owner uid 0 (root), gid {UnknownGroup}, mode 0710)"));
        Assert.That(NobodysAccess(UnknownGroup).SearchBarrier(file), Is.Null);
    }

    [Test]
    public void A_units_group_in_place_of_the_accounts_own_is_counted_as_systemd_gives_it()
    {
        // Group=4242: systemd gives nobody that gid and getgrouplist's for it (initgroups), so nogroup, nobody's primary
        // group in passwd and listing no members, is gone.
        Assert.That(UnixGroups.GroupsOf("nobody", UnknownGroup), Is.EqualTo(new[] { UnknownGroup }), "precondition: nobody is listed in no group");
        var ownGroups = FileInside("own", 0x1C8, "root:nogroup");
        var unitsGroup = FileInside("units", 0x1C8, $"root:{UnknownGroup}");
        var withGroup = UserAccess.For(Nobody, primaryGroup: UnknownGroup) ?? throw new AssertionException("no account for nobody");

        Assert.That(KernelLets(ownGroups, UnknownGroup), Is.False, "the kernel: nogroup's directory is shut to nobody under Group=");
        Assert.That(KernelLets(unitsGroup, UnknownGroup), Is.True, "and the unit's group's is open");
        Assert.That(withGroup.SearchBarrier(ownGroups), Does.EndWith("(owner uid 0 (root), gid 65534, mode 0710)"));
        Assert.That(withGroup.SearchBarrier(unitsGroup), Is.Null);
        Assert.That(NobodysAccess().SearchBarrier(ownGroups), Is.Null, "without Group=, nogroup is nobody's");
    }

    [Test]
    public void Links_among_the_directories_are_walked_as_the_kernel_walks_them()
    {
        // hidden (0700) holds open (0755) and a file of its own; the paths below pass through hidden only by their links.
        var file = FileInside(Path.Combine("hidden", "open"), 0x1ED, "root:root");
        var hidden = Path.Combine(_directory, "hidden");
        var beside = Path.Combine(hidden, "beside");
        File.WriteAllText(beside, "s3cret");
        Run("chown", "nobody", beside);
        File.SetUnixFileMode(hidden, (UnixFileMode)0x1C0);
        File.CreateSymbolicLink(Path.Combine(_directory, "link"), Path.GetDirectoryName(file)!);
        File.CreateSymbolicLink(Path.Combine(_directory, "relative"), "link");
        File.CreateSymbolicLink(Path.Combine(_directory, "file-link"), file);
        string[] paths =
        [
            Path.Combine(_directory, "link", "token"),           // a link to hidden/open
            Path.Combine(_directory, "relative", "token"),       // a relative link to that link
            Path.Combine(_directory, "link", "..", "beside"),    // ".." from where the link led: hidden, not _directory
            Path.Combine(_directory, "file-link"),               // a link at the file itself
        ];
        var expected = $"{hidden} (owner uid 0 (root), gid 0, mode 0700)";

        foreach (var path in paths)
        {
            Assert.That(KernelLets(path, NoGroup), Is.False, $"the kernel stops nobody at hidden: {path}");
            Assert.That(NobodysAccess().SearchBarrier(path), Is.EqualTo(expected), path);
        }

        File.SetUnixFileMode(hidden, (UnixFileMode)0x1C9);
        Assert.That(paths.Select(p => (KernelLets(p, NoGroup), NobodysAccess().SearchBarrier(p))), Is.All.EqualTo((true, (string?)null)), "hidden 0711");
    }

    [Test]
    public void A_walk_the_kernel_cannot_finish_ends_without_a_verdict_past_where_it_stopped()
    {
        // A link loop, a dangling link and a file used as a directory: the kernel refuses them (ELOOP, ENOENT, ENOTDIR),
        // and the daemon's open names that; the walk still names a directory before them that nobody may not search.
        var hidden = Directory.CreateDirectory(Path.Combine(_directory, "hidden")).FullName;
        File.CreateSymbolicLink(Path.Combine(hidden, "a"), "b");
        File.CreateSymbolicLink(Path.Combine(hidden, "b"), "a");
        File.CreateSymbolicLink(Path.Combine(hidden, "dangling"), Path.Combine(hidden, "nowhere"));
        File.WriteAllText(Path.Combine(hidden, "plain"), "");
        string[] paths = [Path.Combine(hidden, "a", "token"), Path.Combine(hidden, "dangling", "token"), Path.Combine(hidden, "plain", "token")];

        Assert.That(paths.Select(p => NobodysAccess().SearchBarrier(p)), Is.All.Null, "hidden 0755: nothing to name");
        File.SetUnixFileMode(hidden, (UnixFileMode)0x1C0);
        Assert.That(paths.Select(p => NobodysAccess().SearchBarrier(p)), Is.All.EqualTo($"{hidden} (owner uid 0 (root), gid 0, mode 0700)"));
    }

    [Test]
    public void Links_a_customer_controls_cannot_make_root_walk_names_that_are_not_there()
    {
        // Her links, each to 2,000 names that do not exist: the kernel's lookup fails at the first, and so does the walk,
        // instead of growing a path for every name in root's check.
        var hers = Directory.CreateDirectory(Path.Combine(_directory, "hers")).FullName;
        var missing = string.Join('/', Enumerable.Repeat("x", 2000));
        for (var k = 1; k <= 40; k++)
        {
            File.CreateSymbolicLink(Path.Combine(hers, $"L{k}"), k < 40 ? $"L{k + 1}/{missing}" : missing);
        }

        var searched = UserAccess.DirectoriesSearched(Path.Combine(hers, "L1", "token"));

        Assert.That(searched, Is.EqualTo(new[] { "/", "/tmp", _directory, hers }), "the walk ends at the first name that is not there");
    }

    [Test]
    public void Dot_dot_at_the_root_stays_there_and_a_relative_target_climbs_from_the_links_directory()
    {
        // "/../tmp/…" is "/tmp/…" to the kernel; a link "up" -> "../hidden/open" climbs from the link's own directory.
        var file = FileInside(Path.Combine("hidden", "open"), 0x1ED, "root:root");
        var hidden = Path.Combine(_directory, "hidden");
        File.SetUnixFileMode(hidden, (UnixFileMode)0x1C0);
        var sub = Directory.CreateDirectory(Path.Combine(_directory, "sub")).FullName;
        File.CreateSymbolicLink(Path.Combine(sub, "up"), Path.Combine("..", "hidden", "open"));
        var expected = $"{hidden} (owner uid 0 (root), gid 0, mode 0700)";

        Assert.That(NobodysAccess().SearchBarrier("/.." + file), Is.EqualTo(expected));
        Assert.That(KernelLets(Path.Combine(sub, "up", "token"), NoGroup), Is.False);
        Assert.That(NobodysAccess().SearchBarrier(Path.Combine(sub, "up", "token")), Is.EqualTo(expected));
    }

    [Test]
    public void A_directory_with_an_acl_is_left_to_the_kernel()
    {
        // root's 0700 plus "user:nobody:--x" (the mode then reads 0710: its group bits are the ACL's mask).
        var file = FileInside("acl", 0x1C0, "root:root");
        SetAccessAcl(Path.GetDirectoryName(file)!, (0x01, 7, uint.MaxValue), (0x02, 1, Nobody), (0x04, 0, uint.MaxValue), (0x10, 1, uint.MaxValue), (0x20, 0, uint.MaxValue));

        Assert.That(KernelLets(file, NoGroup), Is.True, "the ACL lets nobody through");
        Assert.That(NobodysAccess().SearchBarrier(file), Is.Null);
    }

    [Test]
    public void The_files_own_read_bit_is_judged_through_a_link_at_it()
    {
        var file = FileInside("readable", 0x1ED, "root:root");
        Run("chown", "root", file);
        var link = Path.Combine(_directory, "key-link");
        File.CreateSymbolicLink(link, file);

        Assert.That(KernelLets(link, NoGroup), Is.False, "root's 0600");
        Assert.That(NobodysAccess().ReadDenied(link), Is.EqualTo("owner uid 0 (root), gid 0, mode 0600"));
        File.SetUnixFileMode(file, (UnixFileMode)0x1A4);
        Assert.That(KernelLets(link, NoGroup), Is.True, "root's 0644");
        Assert.That(NobodysAccess().ReadDenied(link), Is.Null);
    }

    [Test]
    public void Root_and_a_uid_without_an_account_are_not_judged()
    {
        Assert.That(UserAccess.For(0), Is.Null, "root searches and reads everything");
        Assert.That(UserAccess.For(3_999_999_999), Is.Null, "no account: its groups are unknown");
    }

    // struct posix_acl_xattr_header (version 2) and its entries, as setfacl writes them into system.posix_acl_access.
    internal static void SetAccessAcl(string path, params (ushort Tag, ushort Permissions, uint Id)[] entries)
    {
        var bytes = new byte[4 + (8 * entries.Length)];
        BitConverter.TryWriteBytes(bytes.AsSpan(0), 2u);
        for (var i = 0; i < entries.Length; i++)
        {
            BitConverter.TryWriteBytes(bytes.AsSpan(4 + (8 * i)), entries[i].Tag);
            BitConverter.TryWriteBytes(bytes.AsSpan(6 + (8 * i)), entries[i].Permissions);
            BitConverter.TryWriteBytes(bytes.AsSpan(8 + (8 * i)), entries[i].Id);
        }

        Assert.That(SetXattr(path, "system.posix_acl_access", bytes, (nuint)bytes.Length, 0), Is.Zero, $"setxattr: errno {Marshal.GetLastPInvokeError()}");
    }

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int Close(int fd);

    [LibraryImport("libc", EntryPoint = "setxattr", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int SetXattr(string path, string name, byte[] value, nuint size, int flags);
}
