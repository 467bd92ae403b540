namespace Interceptor.Linux;

/// <summary>
/// The steps of the kernel's lookup of an absolute path: each name, and the directory it is looked up in, links followed
/// as the kernel follows them (a link's target walked from "/" or from the link's own directory, ".." taken from where
/// the walk is, not from the text, which "a/link/.." would get wrong). Where a configured file really is, whatever its
/// path says: a link in /etc that leads into /tmp.
/// </summary>
internal static class PathLookup
{
    private const int MaxLinks = 40;     // the kernel's limit on links followed in one lookup (MAXSYMLINKS)
    private const int MaxSteps = 1024;   // names looked up in one walk: far more than any configured path has
    private const int MaxPath = 4096;    // PATH_MAX: a longer directory path is no configured file's

    /// <summary>A name looked up, and the directory (a path without links) it is looked up in.</summary>
    public readonly record struct Step(string Directory, string Name)
    {
        /// <summary>The entry the step looks up; null for "..", which names no entry of its own.</summary>
        public string? Entry => Name == ".." ? null : System.IO.Path.Join(Directory, Name);
    }

    /// <summary>
    /// Every step of the lookup of <paramref name="path"/> (made absolute from the current directory), in order. It ends
    /// where the lookup would fail (a name that is not there, a loop past the kernel's limit), and at bounds no real path
    /// reaches: links a customer controls on the way (a configured path under her home or /tmp) could otherwise feed it
    /// thousands of names, each making a longer path, in root's check.
    /// </summary>
    public static IEnumerable<Step> Steps(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var names = new Stack<string>(Enumerable.Reverse(Names(System.IO.Path.IsPathRooted(path) ? path : System.IO.Path.Join(Environment.CurrentDirectory, path))));
        var current = "/";
        for (int links = 0, steps = 0; names.Count > 0 && ++steps <= MaxSteps && current.Length <= MaxPath;)
        {
            var name = names.Pop();
            yield return new Step(current, name);
            if (name == "..")
            {
                current = System.IO.Path.GetDirectoryName(current) ?? "/";
                continue;
            }

            var next = System.IO.Path.Join(current, name);
            if (FileStatus.Get(FileStatus.AtCurrentDirectory, next, FileStatus.AtSymlinkNoFollow, FileStatus.TypeField, out var status) != 0)
            {
                yield break;
            }

            if (status.Type != FileStatus.SymbolicLink)
            {
                current = next;
                continue;
            }

            if (++links > MaxLinks || LinkTarget(next) is not { Length: > 0 } target)
            {
                yield break;
            }

            foreach (var part in Enumerable.Reverse(Names(target)))
            {
                names.Push(part);
            }

            current = target.StartsWith('/') ? "/" : current;
        }
    }

    // Null when the link went away since it was seen, or cannot be read: the walk stops, judged as far as it went.
    private static string? LinkTarget(string link)
    {
        try
        {
            return new FileInfo(link).LinkTarget;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static string[] Names(string path) => path.Split('/', StringSplitOptions.RemoveEmptyEntries).Where(n => n != ".").ToArray();
}
