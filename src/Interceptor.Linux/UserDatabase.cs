using System.Buffers;
using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using Tmds.Linux;

namespace Interceptor.Linux;

/// <summary>
/// User name and uid lookups through the C library's passwd database, so users that live in
/// LDAP/SSSD (via NSS) resolve like those in /etc/passwd.
/// </summary>
public static partial class UserDatabase
{
    // NSS may call out to a directory server, and every accepted connection wants a name:
    // cache answers (negative ones too) for a while. Users are rarely renamed.
    private static readonly long CacheLifetimeMs = (long)TimeSpan.FromSeconds(60).TotalMilliseconds;
    private const int CacheCapacity = 10_000;
    private const int InitialBufferSize = 1024;

    // The buffer only holds one entry's strings; needing more than this means a broken NSS source.
    private const int MaxBufferSize = 1024 * 1024;

    private static readonly ConcurrentDictionary<uint, CacheEntry> NameCache = new();
    private static readonly Lock Enumerating = new();

    /// <summary>The process's effective uid (geteuid).</summary>
    public static uint EffectiveUid => LibC.geteuid();

    /// <summary>The login name of <paramref name="uid"/>, or null when no such user exists. Cached 60 s.</summary>
    /// <exception cref="LinuxInteropException">The user database could not be read (I/O error, no memory).</exception>
    public static string? NameOf(uint uid)
    {
        var now = Environment.TickCount64;
        if (NameCache.TryGetValue(uid, out var cached) && cached.ExpiresAt > now)
        {
            return cached.Name;
        }

        Lookup(uid, null, out _, out _, out var name);
        // Count locks the whole dictionary, but this runs only on a miss (once per uid a minute).
        if (NameCache.Count >= CacheCapacity)
        {
            // Bounded memory beats a perfect cache: a uid flood just makes lookups slower.
            NameCache.Clear();
        }

        NameCache[uid] = new CacheEntry(name, now + CacheLifetimeMs);
        return name;
    }

    /// <summary>
    /// "uid 995 (smtp-interceptor)" for a message or a log line; a uid without an account, or a user database that cannot
    /// be read (sssd busy, no descriptor left), leaves the bare uid: a message must not fail for want of a name.
    /// </summary>
    public static string Describe(uint uid) => NameForMessage(uid) is { } name ? $"uid {uid} ({name})" : $"uid {uid}";

    /// <summary><see cref="NameOf"/> for a message: null when there is no account or the database cannot be read.</summary>
    public static string? NameForMessage(uint uid)
    {
        try
        {
            return NameOf(uid);
        }
        catch (LinuxInteropException)
        {
            return null;
        }
    }

    /// <summary>
    /// <see cref="NameOf"/> without asking NSS (which may wait on LDAP or sssd): false when the answer is not cached;
    /// true with the cached name, or with null for a uid cached as having no account.
    /// </summary>
    public static bool TryCachedName(uint uid, out string? name)
    {
        if (NameCache.TryGetValue(uid, out var cached) && cached.ExpiresAt > Environment.TickCount64)
        {
            name = cached.Name;
            return true;
        }

        name = null;
        return false;
    }

    /// <summary>The uid of user <paramref name="name"/>, or null when no such user exists. Not cached.</summary>
    /// <exception cref="LinuxInteropException">The user database could not be read.</exception>
    public static uint? UidOf(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        return Lookup(0, name, out var uid, out _, out _) ? uid : null;
    }

    /// <summary>
    /// The uid a configuration or a command line names a user by: a name from the database first (as useradd refuses
    /// names of digits only), else a uid written in digits alone (no sign, no spaces); null when it is neither.
    /// </summary>
    /// <exception cref="LinuxInteropException">The user database could not be read.</exception>
    public static uint? UidOfNameOrNumber(string nameOrUid) => UidOf(nameOrUid) ?? ParseUid(nameOrUid);

    /// <summary>A uid written in digits alone, or null; 4294967295 is (uid_t)-1, "no change" to chown and setresuid, not a user.</summary>
    public static uint? ParseUid(string text) =>
        uint.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var uid) && uid != uint.MaxValue ? uid : null;

    /// <summary>
    /// "no such user "X" in the user database", and when X is meant as a uid, what is wrong with it: out of range, or a
    /// sign or spaces (which an earlier version read as a uid in Interception.ExemptUsers).
    /// </summary>
    public static string NoSuchUser(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var hint = text.Length > 0 && text.All(char.IsAsciiDigit) ? " (a uid is at most 4294967294)"
            : long.TryParse(text, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out _) ? " (a uid is written in digits alone, without a sign or spaces)"
            : "";
        return $"no such user \"{text}\" in the user database{hint}";
    }

    /// <summary>The login name and primary gid of <paramref name="uid"/>, or null when no such user exists. Not cached.</summary>
    /// <exception cref="LinuxInteropException">The user database could not be read.</exception>
    public static (string Name, uint Gid)? AccountOf(uint uid) =>
        Lookup(uid, null, out _, out var gid, out var name) && name is not null ? (name, gid) : null;

    /// <summary>
    /// Every account the passwd database lists (getpwent_r: /etc/passwd, and a directory where NSS enumerates it; sssd and
    /// LDAP setups often do not), at most <paramref name="limit"/>. Slow on a big directory: not for a connection's path.
    /// One enumeration at a time: the C library keeps a single position for the whole process.
    /// </summary>
    /// <exception cref="LinuxInteropException">The user database could not be read.</exception>
    public static unsafe IReadOnlyList<(uint Uid, string Name)> Accounts(int limit = 1_000_000)
    {
        var found = new List<(uint, string)>();
        lock (Enumerating)
        {
            SetPwEnt();
            try
            {
                var size = InitialBufferSize;
                while (found.Count < limit)
                {
                    var buffer = ArrayPool<byte>.Shared.Rent(size);
                    try
                    {
                        Passwd entry;
                        Passwd* result = null;
                        int error;
                        fixed (byte* p = buffer)
                        {
                            error = GetPwEnt(&entry, p, (nuint)buffer.Length, &result);
                            if (error == 0 && result is not null)
                            {
                                found.Add((result->Uid, Marshal.PtrToStringUTF8((nint)result->Name) ?? ""));
                                continue;
                            }
                        }

                        // ERANGE: the same entry again with a bigger buffer (getpwent_r does not move on); ENOENT: the end.
                        switch (NssErrors.Classify(error, ref size, MaxBufferSize))
                        {
                            case NssOutcome.Retry:
                                continue;
                            case NssOutcome.NotFound:
                                return found;
                        }

                        throw new LinuxInteropException("getpwent_r", error);
                    }
                    finally
                    {
                        ArrayPool<byte>.Shared.Return(buffer);
                    }
                }

                return found;
            }
            finally
            {
                EndPwEnt();
            }
        }
    }

    /// <summary>
    /// Runs getpwnam_r (when <paramref name="name"/> is set) or getpwuid_r, growing the buffer on
    /// ERANGE. False when the user does not exist.
    /// </summary>
    private static unsafe bool Lookup(uint uid, string? name, out uint foundUid, out uint foundGid, out string? foundName)
    {
        foundUid = 0;
        foundGid = 0;
        foundName = null;
        var size = InitialBufferSize;
        while (true)
        {
            var buffer = ArrayPool<byte>.Shared.Rent(size);
            try
            {
                Passwd entry;
                Passwd* result = null;
                int error;
                fixed (byte* p = buffer)
                {
                    error = name is null
                        ? GetPwUid(uid, &entry, p, (nuint)buffer.Length, &result)
                        : GetPwNam(name, &entry, p, (nuint)buffer.Length, &result);

                    if (error == 0 && result is not null)
                    {
                        foundUid = result->Uid;
                        foundGid = result->Gid;
                        foundName = Marshal.PtrToStringUTF8((nint)result->Name);
                        return true;
                    }
                }

                switch (NssErrors.Classify(error, ref size, MaxBufferSize))
                {
                    case NssOutcome.Retry:
                        continue;
                    case NssOutcome.NotFound:
                        return false;
                }

                throw new LinuxInteropException(name is null ? $"getpwuid_r({uid})" : $"getpwnam_r({name})", error);
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
    }

    // "libc" is mapped by the .NET runtime to the platform's C library (libc.so.6 on glibc).
    [LibraryImport("libc", EntryPoint = "getpwuid_r")]
    private static unsafe partial int GetPwUid(uint uid, Passwd* pwd, byte* buffer, nuint bufferLength, Passwd** result);

    [LibraryImport("libc", EntryPoint = "getpwnam_r", StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial int GetPwNam(string name, Passwd* pwd, byte* buffer, nuint bufferLength, Passwd** result);

    [LibraryImport("libc", EntryPoint = "getpwent_r")]
    private static unsafe partial int GetPwEnt(Passwd* pwd, byte* buffer, nuint bufferLength, Passwd** result);

    [LibraryImport("libc", EntryPoint = "setpwent")]
    private static partial void SetPwEnt();

    [LibraryImport("libc", EntryPoint = "endpwent")]
    private static partial void EndPwEnt();

    private readonly record struct CacheEntry(string? Name, long ExpiresAt);

    /// <summary>struct passwd on 64-bit glibc (x86_64, arm64).</summary>
    [StructLayout(LayoutKind.Sequential)]
    private unsafe struct Passwd
    {
        public byte* Name;
        public byte* Password;
        public uint Uid;
        public uint Gid;
        public byte* Gecos;
        public byte* Directory;
        public byte* Shell;
    }
}
