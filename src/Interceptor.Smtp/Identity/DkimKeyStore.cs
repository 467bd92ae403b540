using System.Collections.Concurrent;

namespace Interceptor.Smtp.Identity;

/// <summary>What looking up a domain's key found.</summary>
public enum KeyLookup
{
    Found,

    /// <summary>No key file for the domain and selector: nothing to sign with (logged per message, no alert).</summary>
    Missing,

    /// <summary>A key file exists but cannot be read or parsed, or its kind is not in <c>Dkim.Algorithms</c>: an alert.</summary>
    Unusable,
}

/// <summary>
/// The keys under <c>Dkim.KeyDirectory</c> as <c>&lt;domain&gt;/&lt;selector&gt;.key</c>, parsed once and re-read when the
/// file changes. A domain's own key only: the path is built from a checked domain name, never from user text.
/// </summary>
public sealed class DkimKeyStore(string directory, string selector, IReadOnlyCollection<string> algorithms)
{
    private readonly ConcurrentDictionary<string, (DateTime Modified, long Length, DkimKey Key)> _cache = new(StringComparer.Ordinal);

    public string Selector => selector;

    public string PathFor(string domain) => Path.Combine(directory, domain, selector + ".key");

    public (KeyLookup Result, DkimKey? Key, string? Problem) Find(string domain)
    {
        if (!Core.Domains.DomainMap.IsDomainName(domain))
        {
            return (KeyLookup.Missing, null, null);
        }

        var path = PathFor(domain);
        try
        {
            var info = new FileInfo(path);
            if (!info.Exists)
            {
                return (KeyLookup.Missing, null, null);
            }

            if (_cache.TryGetValue(path, out var cached) && cached.Modified == info.LastWriteTimeUtc && cached.Length == info.Length)
            {
                return (KeyLookup.Found, cached.Key, null);
            }

            var key = DkimKey.Parse(File.ReadAllText(path));
            if (!algorithms.Contains(key.Algorithm))
            {
                return (KeyLookup.Unusable, null, $"{path} is an {key.KeyType} key but Dkim.Algorithms allows only {string.Join(", ", algorithms)}");
            }

            _cache[path] = (info.LastWriteTimeUtc, info.Length, key);
            return (KeyLookup.Found, key, null);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException)
        {
            return (KeyLookup.Unusable, null, $"{path}: {e.Message}");
        }
    }

    /// <summary>
    /// Why the key directory must not be used, or null: it must exist and give group and others no access (the keys
    /// sign mail as the customers' domains). Checked at start; the daemon refuses to run otherwise.
    /// </summary>
    public static string? DirectoryProblem(string directory)
    {
        if (!Directory.Exists(directory))
        {
            return $"Dkim.KeyDirectory {directory} does not exist";
        }

        var mode = File.GetUnixFileMode(directory);
        const UnixFileMode open = UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;
        if ((mode & open) != 0)
        {
            return $"Dkim.KeyDirectory {directory} has mode {Convert.ToString((int)mode, 8).PadLeft(4, '0')}: group and others can read it; make it 0700";
        }

        return null;
    }
}
