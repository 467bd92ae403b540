using System.Runtime.InteropServices;
using Interceptor.Linux;

namespace Interceptor.Tests.Linux;

/// <summary>
/// A check made as root for the daemon's user (check-config --daemon-user) passes every directory root may search; the
/// daemon's user may not search them all (a token kept under /root). The directory that stops it is named, judged as the
/// kernel judges it: these tests compare the check with an open made by a thread that is nobody, in nobody's groups.
/// </summary>
public sealed partial class PrivateFileTests
{
    private const uint NoGroup = 65534;

    private static string SearchRefusal(string path, string directory, string status) =>
        $"{path}: the daemon's user (uid {Nobody} (nobody)) may not search {directory} ({status}); it must be able to search every directory on the path (or keep the file in /etc/smtp-interceptor)";

    // The token nobody's, 0600, inside a directory of the given mode, owner and group.
    private string TokenInside(string name, UnixFileMode mode, string ownerAndGroup)
    {
        var directory = Directory.CreateDirectory(Path.Combine(_directory, name)).FullName;
        var token = Path.Combine(directory, "token");
        File.WriteAllText(token, "s3cret");
        File.SetUnixFileMode(token, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        Run("chown", "nobody", token);
        Run("chown", ownerAndGroup, directory);
        File.SetUnixFileMode(directory, mode);
        return token;
    }

    [TestCase(0x1C0, "root:root", false, "owner uid 0 (root), gid 0, mode 0700", TestName = "{m}(root's 0700: others may not search)")]
    [TestCase(0x1C9, "root:root", true, "", TestName = "{m}(root's 0711: others may search)")]
    [TestCase(0x1C8, "root:nogroup", true, "", TestName = "{m}(0710 of nobody's group: its group may search)")]
    [TestCase(0x1C1, "root:nogroup", false, "owner uid 0 (root), gid 65534, mode 0701", TestName = "{m}(0701 of nobody's group: the group's bits apply, not the others')")]
    [TestCase(0x39, "nobody:root", false, "owner uid 65534 (nobody), gid 0, mode 0071", TestName = "{m}(nobody's 0071: the owner's bits apply)")]
    [TestCase(0x40, "nobody:root", true, "", TestName = "{m}(nobody's 0100: its owner may search)")]
    public void A_check_made_as_root_for_the_daemons_user_judges_each_directory_as_the_kernel_does(int mode, string ownerAndGroup, bool searchable, string status)
    {
        var token = TokenInside("dir", (UnixFileMode)mode, ownerAndGroup);
        var directory = Path.GetDirectoryName(token)!;

        var checkedAsRoot = Outcome(() => Read(token, owner: Nobody));
        var openedAsNobody = OnThreadOfItsOwn.Run("as nobody in nogroup", BecomeNobodyInNobodysGroups, () => Outcome(() => Read(token, owner: Nobody)));

        Assert.That(openedAsNobody, searchable ? Is.EqualTo("s3cret") : Does.Contain("Permission denied"), "the kernel's verdict for nobody");
        Assert.That(checkedAsRoot, Is.EqualTo(searchable ? "s3cret" : SearchRefusal(token, directory, status)), "the check made as root");
    }

    [Test]
    public void A_link_among_the_directories_leads_through_its_targets_directories_which_are_judged_too()
    {
        // link -> hidden/open: every directory on the path as written may be searched; hidden, on the target's way, may not.
        var token = TokenInside(Path.Combine("hidden", "open"), (UnixFileMode)0x1ED, "root:root");
        var hidden = Path.Combine(_directory, "hidden");
        File.SetUnixFileMode(hidden, (UnixFileMode)0x1C0);
        var link = Path.Combine(_directory, "link");
        File.CreateSymbolicLink(link, Path.GetDirectoryName(token)!);
        var throughLink = Path.Combine(link, "token");

        Assert.That(Refusal(throughLink, owner: Nobody), Is.EqualTo(SearchRefusal(throughLink, hidden, "owner uid 0 (root), gid 0, mode 0700")));
        File.SetUnixFileMode(hidden, (UnixFileMode)0x1C9);
        Assert.That(Read(throughLink, owner: Nobody), Is.EqualTo("s3cret"), "with hidden 0711");
    }

    [Test]
    public void A_directory_with_an_acl_is_left_to_the_kernel_and_the_acl_is_what_lets_nobody_through()
    {
        // root's 0700 plus "user:nobody:--x" (the mode then reads 0710: its group bits are the ACL's mask).
        var token = TokenInside("acl", (UnixFileMode)0x1C0, "root:root");
        SetAccessAcl(Path.GetDirectoryName(token)!, (Tag: 0x01, Permissions: 7, Id: uint.MaxValue), (0x02, 1, Nobody), (0x04, 0, uint.MaxValue), (0x10, 1, uint.MaxValue), (0x20, 0, uint.MaxValue));

        Assert.That(OnThreadOfItsOwn.Run("as nobody in nogroup", BecomeNobodyInNobodysGroups, () => Read(token, owner: Nobody)), Is.EqualTo("s3cret"), "the kernel lets nobody through");
        Assert.That(Read(token, owner: Nobody), Is.EqualTo("s3cret"), "the check made as root");
    }

    [Test]
    public void A_directory_that_stops_the_daemons_user_is_named_with_the_files_own_problems()
    {
        var token = TokenInside("both", (UnixFileMode)0x1C0, "root:root");
        Run("chown", "root", token);
        File.SetUnixFileMode(token, (UnixFileMode)0x1A4);

        Assert.That(Refusal(token, owner: Nobody), Is.EqualTo(
            $"{token}: is owned by uid 0 (root), not by the daemon's user (uid {Nobody} (nobody)), and mode 0644 lets others than the daemon's user read the secret; run chown nobody {token} and chmod 600 {token}; "
            + $"also, the daemon's user (uid {Nobody} (nobody)) may not search {Path.GetDirectoryName(token)} (owner uid 0 (root), gid 0, mode 0700); it must be able to search every directory on the path (or keep the file in /etc/smtp-interceptor)"));
    }

    [Test]
    public void Under_systemd_a_file_in_a_directory_the_packaged_unit_hides_is_named_with_the_units_settings()
    {
        // The daemon sees its own /tmp (PrivateTmp=yes): root's check found the file there, the daemon does not.
        var missing = Path.Combine(_directory, "missing");
        var unitsDirectory = Path.Combine("/etc", Path.GetFileName(_directory) + "-missing");
        var outside = Refusal(missing);
        Environment.SetEnvironmentVariable("INVOCATION_ID", "0123456789abcdef0123456789abcdef");
        try
        {
            Assert.That(_directory, Does.StartWith("/tmp/"), "the temporary directory this test assumes");
            Assert.That(Refusal(missing), Is.EqualTo($"{missing}: cannot be read: No such file or directory (the packaged unit hides /home, /root and /run/user from the daemon and gives it a /tmp and /var/tmp of its own: ProtectHome=yes, PrivateTmp=yes)"));
            Assert.That(Refusal(unitsDirectory), Is.EqualTo($"{unitsDirectory}: cannot be read: No such file or directory"), "elsewhere, the error alone");
            Assert.That(outside, Is.EqualTo($"{missing}: cannot be read: No such file or directory"), "not started by systemd");
        }
        finally
        {
            Environment.SetEnvironmentVariable("INVOCATION_ID", null);
        }
    }

    private static string Outcome(Func<string> read)
    {
        try
        {
            return read();
        }
        catch (PrivateFileException e)
        {
            return e.Message;
        }
    }

    // As BecomeNobody, with nobody's group and supplementary groups first (raw system calls: this thread's alone).
    private static void BecomeNobodyInNobodysGroups()
    {
        var arm = RuntimeInformation.ProcessArchitecture == Architecture.Arm64;
        var groups = new[] { NoGroup };
        Assert.That(SetGroups(arm ? 159 : 116, groups.Length, groups), Is.Zero, $"setgroups: errno {Marshal.GetLastPInvokeError()}");
        Assert.That(Syscall(arm ? 149 : 119, -1, NoGroup, -1), Is.Zero, $"setresgid: errno {Marshal.GetLastPInvokeError()}");
        BecomeNobody();
        DropFileCapabilities();
    }

    // struct posix_acl_xattr_header (version 2) and its entries, as setfacl writes them into system.posix_acl_access.
    private static void SetAccessAcl(string path, params (ushort Tag, ushort Permissions, uint Id)[] entries)
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

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial long SetGroups(long number, long count, uint[] groups);

    [LibraryImport("libc", EntryPoint = "setxattr", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int SetXattr(string path, string name, byte[] value, nuint size, int flags);
}
