using System.Buffers;
using System.Runtime.InteropServices;
using Tmds.Linux;

namespace Interceptor.Linux;

/// <summary>
/// Group lookups through the C library's group database (NSS, so LDAP/SSSD groups count), and the one
/// ownership change the control socket needs. Membership is read from the database on every call, so
/// removing an admin from the group takes effect at once, even for processes that still carry the gid.
/// </summary>
public static partial class UnixGroups
{
    private const int InitialBufferSize = 1024;

    // One group entry's strings (its member list can be long on a big host); more than this means a broken NSS source.
    private const int MaxBufferSize = 4 * 1024 * 1024;

    // Far above NGROUPS_MAX (65536) would be a broken NSS source, not a real user.
    private const int MaxGroups = 1 << 17;

    private unsafe delegate int EntryLookup(Group* entry, byte* buffer, nuint bufferLength, Group** result);

    /// <summary>The gid of group <paramref name="name"/>, or null when there is no such group.</summary>
    /// <exception cref="LinuxInteropException">The group database could not be read.</exception>
    public static unsafe uint? GidOf(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        return Find($"getgrnam_r({name})", (entry, buffer, length, result) => GetGrNam(name, entry, buffer, length, result));
    }

    /// <summary>Whether the group database has a group of gid <paramref name="gid"/>.</summary>
    /// <exception cref="LinuxInteropException">The group database could not be read.</exception>
    public static unsafe bool Exists(uint gid) =>
        Find($"getgrgid_r({gid})", (entry, buffer, length, result) => GetGrGid(gid, entry, buffer, length, result)) is not null;

    private static unsafe uint? Find(string call, EntryLookup lookup)
    {
        var size = InitialBufferSize;
        while (true)
        {
            var buffer = ArrayPool<byte>.Shared.Rent(size);
            try
            {
                Group entry;
                Group* result = null;
                int error;
                fixed (byte* p = buffer)
                {
                    error = lookup(&entry, p, (nuint)buffer.Length, &result);
                    if (error == 0 && result is not null)
                    {
                        return result->Gid;
                    }
                }

                switch (NssErrors.Classify(error, ref size, MaxBufferSize))
                {
                    case NssOutcome.Retry:
                        continue;
                    case NssOutcome.NotFound:
                        return null;
                }

                throw new LinuxInteropException(call, error);
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
    }

    /// <summary>
    /// Every group <paramref name="user"/> belongs to according to the group database, including
    /// <paramref name="primaryGid"/> (getgrouplist).
    /// </summary>
    /// <exception cref="LinuxInteropException">The list did not fit even the largest buffer.</exception>
    public static unsafe IReadOnlyList<uint> GroupsOf(string user, uint primaryGid)
    {
        ArgumentException.ThrowIfNullOrEmpty(user);
        var count = 64;
        while (true)
        {
            var groups = new uint[count];
            var found = count;
            int result;
            fixed (uint* p = groups)
            {
                result = GetGroupList(user, primaryGid, p, &found);
            }

            if (result >= 0)
            {
                return groups[..Math.Min(found, groups.Length)];
            }

            // -1: too small; glibc stored the needed count in found (older versions may not, so at least double).
            if (count >= MaxGroups)
            {
                throw new LinuxInteropException($"getgrouplist({user}) reports more than {MaxGroups} groups");
            }

            count = Math.Min(MaxGroups, Math.Max(found, count * 2));
        }
    }

    /// <summary>Gives <paramref name="path"/> to group <paramref name="gid"/>, owner unchanged; a symlink itself, never its target.</summary>
    /// <exception cref="LinuxInteropException">lchown failed (no permission, no such file).</exception>
    public static void SetGroup(string path, uint gid)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (LChown(path, uint.MaxValue, gid) != 0)
        {
            throw new LinuxInteropException($"lchown({path}, -1, {gid})", Marshal.GetLastPInvokeError());
        }
    }

    // "libc" is mapped by the .NET runtime to the platform's C library (libc.so.6 on glibc).
    [LibraryImport("libc", EntryPoint = "getgrnam_r", StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial int GetGrNam(string name, Group* grp, byte* buffer, nuint bufferLength, Group** result);

    [LibraryImport("libc", EntryPoint = "getgrgid_r")]
    private static unsafe partial int GetGrGid(uint gid, Group* grp, byte* buffer, nuint bufferLength, Group** result);

    [LibraryImport("libc", EntryPoint = "getgrouplist", StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial int GetGroupList(string user, uint group, uint* groups, int* ngroups);

    // uid_t -1 (uint.MaxValue) leaves the owner as it is.
    [LibraryImport("libc", EntryPoint = "lchown", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int LChown(string path, uint owner, uint group);

    /// <summary>struct group on 64-bit glibc (x86_64, arm64); the gid is followed by 4 bytes of padding.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private unsafe struct Group
    {
        public byte* Name;
        public byte* Password;
        public uint Gid;
        public byte** Members;
    }
}
