using System.Globalization;
using System.Text;
using Interceptor.Core.Attribution;
using Microsoft.Extensions.Logging;
using Tmds.Linux;

namespace Interceptor.Linux;

/// <summary>
/// /etc/subuid, kept current cheaply: every accepted connection asks <see cref="Current"/>, which stats the file at
/// most once a second (inode, size, mtime, ctime) and re-reads it only when that changed, or every minute while a
/// named owner could not be resolved (useradd may write the line just before the account is visible through NSS).
/// A reload happens on one thread while the others keep using the previous map, so no connection ever waits for it.
/// </summary>
public sealed class SubordinateUidFile
{
    public const string DefaultPath = "/etc/subuid";

    // A bigger file is not a subuid file a host would have (a million lines is ~30 MB): refuse to read it.
    private const long MaxBytes = 64L * 1024 * 1024;
    private const long CheckIntervalMs = 1000;
    private const long UnresolvedRetryMs = 60_000;

    private readonly string _path;
    private readonly ILogger _logger;
    private readonly Func<string, uint?> _uidOf;
    private readonly Func<uint, string?> _nameOf;
    private readonly SubordinateUidAccountCheck? _accountCheck;
    private readonly Lock _reloading = new();
    private SubordinateUidMap _map = SubordinateUidMap.Empty;
    private FileStamp? _stamp;
    private long _checkedAt;
    private long _loadedAt;
    private bool _unresolved;
    private string _lastProblems = "";

    /// <param name="uidOf">Resolves an owner's name (getpwnam in production); null when no such user.</param>
    /// <param name="nameOf">Names a numeric owner (getpwuid in production).</param>
    /// <param name="accountCheck">Warns of ranges that hold other accounts' uids (the daemon's reader has one).</param>
    public SubordinateUidFile(
        string path, ILogger logger, Func<string, uint?>? uidOf = null, Func<uint, string?>? nameOf = null,
        SubordinateUidAccountCheck? accountCheck = null)
    {
        _path = path;
        _logger = logger;
        _uidOf = uidOf ?? UserDatabase.UidOf;
        _nameOf = nameOf ?? UserDatabase.NameOf;
        _accountCheck = accountCheck;
        lock (_reloading)
        {
            Refresh(Environment.TickCount64);
        }
    }

    /// <summary>How many times the file was actually parsed (tests check that a connection does not cause one).</summary>
    public int Loads { get; private set; }

    /// <summary>The map as of at most a second ago.</summary>
    public SubordinateUidMap Current
    {
        get
        {
            var now = Environment.TickCount64;
            if (now - Volatile.Read(ref _checkedAt) >= CheckIntervalMs && _reloading.TryEnter())
            {
                try
                {
                    Refresh(now);
                }
                finally
                {
                    _reloading.Exit();
                }
            }

            return Volatile.Read(ref _map);
        }
    }

    /// <summary>
    /// The map, when it was checked within the second; false when a check is due (a stat, maybe a reload that resolves
    /// every owner through NSS): callers that must not block then use <see cref="Current"/> elsewhere.
    /// </summary>
    public bool TryCurrentWithoutChecking(out SubordinateUidMap map)
    {
        map = Volatile.Read(ref _map);
        return Environment.TickCount64 - Volatile.Read(ref _checkedAt) < CheckIntervalMs;
    }

    private void Refresh(long now)
    {
        Volatile.Write(ref _checkedAt, now);
        var stamp = FileStamp.Of(_path);
        var retry = _unresolved && now - _loadedAt >= UnresolvedRetryMs;
        if (stamp == _stamp && !retry)
        {
            _accountCheck?.Offer(_map);
            return;
        }

        _loadedAt = now;
        if (stamp is null)
        {
            // No file: nobody has subordinate uids (a host without shadow's subuid support).
            _stamp = null;
            _unresolved = false;
            Volatile.Write(ref _map, SubordinateUidMap.Empty);
            return;
        }

        string text;
        try
        {
            if (stamp.Value.Size > MaxBytes)
            {
                throw new IOException($"it is {stamp.Value.Size} bytes, more than the {MaxBytes} a subuid file could need");
            }

            text = File.ReadAllText(_path, Encoding.UTF8);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Keep the previous map: forgetting every range would turn customers' sub-uids into unknown uids at once.
            _logger.CannotRead(_path, e.Message, _map.Count);
            _stamp = stamp;
            return;
        }

        Loads++;
        _stamp = stamp;
        var parsed = SubordinateUidParser.Parse(text);
        var problems = new List<string>(parsed.Problems);
        var ranges = new List<SubordinateUidRange>();
        _unresolved = false;
        foreach (var line in parsed.Lines)
        {
            if (Resolve(line, problems) is { } owner)
            {
                ranges.Add(new SubordinateUidRange(line.Range, owner, line.LineNumber));
            }
        }

        var map = new SubordinateUidMap(ranges, out var overlaps);
        problems.AddRange(overlaps);
        Volatile.Write(ref _map, map);

        // The same problems found again (a retry of unresolved owners) are not logged again.
        var summary = string.Join("\n", problems);
        if (summary != _lastProblems)
        {
            foreach (var problem in problems)
            {
                _logger.LineIgnored(_path, problem);
            }

            _lastProblems = summary;
        }

        _logger.Loaded(_path, map.Count, map.Ranges.Select(r => r.Owner.Uid).Distinct().Count());
        _accountCheck?.Offer(map);
    }

    private SubordinateUidOwner? Resolve(SubordinateUidLine line, List<string> problems)
    {
        try
        {
            if (uint.TryParse(line.Owner, NumberStyles.None, CultureInfo.InvariantCulture, out var uid))
            {
                // shadow accepts a numeric owner; it may have no account (then the number is its name, as for any uid).
                return new SubordinateUidOwner(uid, _nameOf(uid) ?? $"#{uid}");
            }

            if (_uidOf(line.Owner) is { } found)
            {
                return new SubordinateUidOwner(found, line.Owner);
            }

            problems.Add($"line {line.LineNumber}: owner \"{line.Owner}\" has no account");
        }
        catch (LinuxInteropException e)
        {
            problems.Add($"line {line.LineNumber}: owner \"{line.Owner}\" cannot be looked up: {e.Message}");
        }

        _unresolved = true;
        return null;
    }

    /// <summary>What says "the file changed": a rename gives a new inode, an edit in place a new mtime/ctime or size.</summary>
    private readonly record struct FileStamp(ulong Inode, long Size, long ModifiedNs, long ChangedNs)
    {
        public static unsafe FileStamp? Of(string path)
        {
            var bytes = Encoding.UTF8.GetBytes(path + "\0");
            stat buffer;
            fixed (byte* p = bytes)
            {
                if (LibC.stat(p, &buffer) != 0)
                {
                    return null;
                }
            }

            return new FileStamp(
                (ulong)buffer.st_ino,
                (long)buffer.st_size,
                ((long)buffer.st_mtim.tv_sec * 1_000_000_000) + (long)buffer.st_mtim.tv_nsec,
                ((long)buffer.st_ctim.tv_sec * 1_000_000_000) + (long)buffer.st_ctim.tv_nsec);
        }
    }
}
