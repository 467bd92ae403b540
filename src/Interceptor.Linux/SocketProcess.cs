using System.Globalization;
using Interceptor.Core.Events;

namespace Interceptor.Linux;

/// <summary>The process holding a socket: what an admin needs to find the script that sent the spam.</summary>
public sealed record SocketProcess(int Pid, string? Executable, string? WorkingDirectory, string? CommandLine)
{
    /// <summary>
    /// "pid=4242 exe=/usr/bin/php8.2 cwd=/home/alice/public_html", for logs and the trace header. The paths are the
    /// user's to choose, so they are percent-encoded (<see cref="FieldText.PercentEncode"/>): a directory named
    /// "x uid=0 user=root; host=evil" shows as "x%20uid%3D0%20user%3Droot%3B%20host%3Devil" and adds no field.
    /// </summary>
    public override string ToString() =>
        $"pid={Pid.ToString(CultureInfo.InvariantCulture)}" +
        (Executable is null ? "" : $" exe={FieldText.PercentEncode(Executable)}") +
        (WorkingDirectory is null ? "" : $" cwd={FieldText.PercentEncode(WorkingDirectory)}");

    /// <summary>
    /// Finds the process whose file descriptors include socket:[inode], by walking /proc (best effort: the
    /// process may have exited, or hidden /proc entries may be unreadable). Costs a directory walk, so callers
    /// run it off the hot path. Processes owned by <paramref name="uid"/> are the only ones searched.
    /// </summary>
    public static SocketProcess? Find(ulong inode, uint uid, CancellationToken cancellationToken = default)
    {
        if (inode == 0)
        {
            return null;
        }

        var target = $"socket:[{inode.ToString(CultureInfo.InvariantCulture)}]";
        foreach (var directory in Directory.EnumerateDirectories("/proc"))
        {
            cancellationToken.ThrowIfCancellationRequested();
            var name = Path.GetFileName(directory);
            if (!int.TryParse(name, NumberStyles.None, CultureInfo.InvariantCulture, out var pid) || !OwnedBy(directory, uid))
            {
                continue;
            }

            if (HoldsSocket(directory, target))
            {
                return new SocketProcess(pid, Link(Path.Combine(directory, "exe")), Link(Path.Combine(directory, "cwd")), CommandLineOf(directory));
            }
        }

        return null;
    }

    private static bool OwnedBy(string directory, uint uid)
    {
        try
        {
            // The "Uid:" line of status: real, effective, saved, filesystem.
            foreach (var line in File.ReadLines(Path.Combine(directory, "status")))
            {
                if (line.StartsWith("Uid:", StringComparison.Ordinal))
                {
                    return line.Split('\t', StringSplitOptions.RemoveEmptyEntries).Skip(1).Any(v => v == uid.ToString(CultureInfo.InvariantCulture));
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Exited or not ours to read.
        }

        return false;
    }

    private static bool HoldsSocket(string directory, string target)
    {
        try
        {
            foreach (var fd in Directory.EnumerateFiles(Path.Combine(directory, "fd")))
            {
                if (Link(fd) == target)
                {
                    return true;
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }

        return false;
    }

    private static string? Link(string path)
    {
        try
        {
            return new FileInfo(path).LinkTarget;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static string? CommandLineOf(string directory)
    {
        try
        {
            var raw = File.ReadAllText(Path.Combine(directory, "cmdline"));
            var text = raw.Replace('\0', ' ').Trim();
            return text.Length == 0 ? null : text[..Math.Min(text.Length, 200)];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
