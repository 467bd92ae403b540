using System.Runtime.InteropServices;
using System.Text.Json;

namespace Interceptor.IntegrationTests;

/// <summary>
/// A copy of the daemon/CLI assembly and what its deps.json names, for running it as another user. The build
/// output lives in the checkout, which may sit under a directory other users cannot traverse (a clone under
/// /root, mode 0700): there `setpriv --reuid=nobody dotnet .../smtp-interceptor.dll` cannot even open the dll.
/// The copy goes into the world-readable per-test directory instead (directories 0755, files 0644).
/// </summary>
public static class ReadableDaemonCopy
{
    private const UnixFileMode Directory755 =
        UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute |
        UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;

    private const UnixFileMode File644 =
        UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead;

    /// <summary>Copies the daemon into <paramref name="target"/>; returns the copied smtp-interceptor.dll.</summary>
    public static string CopyInto(string target)
    {
        var source = DaemonProcess.AssemblyPath;
        var from = Path.GetDirectoryName(source)!;
        foreach (var relative in FilesOf(source))
        {
            var destination = Path.Combine(target, relative);
            CreateReadableDirectories(target, Path.GetDirectoryName(relative) ?? "");
            File.Copy(Path.Combine(from, relative), destination, overwrite: true);
            File.SetUnixFileMode(destination, File644);
        }

        return Path.Combine(target, Path.GetFileName(source));
    }

    /// <summary>
    /// The dll, its runtimeconfig and deps.json, and every asset the deps.json lists, as paths relative to the
    /// build output. In an application's output a package's managed and native assemblies sit at the top by file
    /// name; RID-specific ones keep their runtimes/RID/… path, and only this machine's RID (and its fallbacks) is
    /// copied, which is all the host looks for here.
    /// </summary>
    private static List<string> FilesOf(string assembly)
    {
        var depsFile = Path.ChangeExtension(assembly, ".deps.json");
        List<string> files = [Path.GetFileName(assembly), Path.GetFileName(Path.ChangeExtension(assembly, ".runtimeconfig.json")), Path.GetFileName(depsFile)];
        var rids = RidAndFallbacks();
        using var deps = JsonDocument.Parse(File.ReadAllText(depsFile));
        foreach (var target in deps.RootElement.GetProperty("targets").EnumerateObject())
        {
            foreach (var library in target.Value.EnumerateObject())
            {
                foreach (var kind in new[] { "runtime", "native" })
                {
                    if (library.Value.TryGetProperty(kind, out var assets))
                    {
                        files.AddRange(assets.EnumerateObject().Select(a => Path.GetFileName(a.Name)));
                    }
                }

                if (library.Value.TryGetProperty("runtimeTargets", out var ridAssets))
                {
                    files.AddRange(ridAssets.EnumerateObject()
                        .Where(a => a.Value.TryGetProperty("rid", out var rid) && rids.Contains(rid.GetString() ?? ""))
                        .Select(a => a.Name));
                }
            }
        }

        var missing = files.Where(f => !File.Exists(Path.Combine(Path.GetDirectoryName(assembly)!, f))).ToList();
        Assert.That(missing, Is.Empty, $"files {depsFile} names are not in the build output");
        return [.. files.Distinct()];
    }

    /// <summary>"linux-x64" → linux-x64, linux, unix, any: the portable RID graph the host walks.</summary>
    private static HashSet<string> RidAndFallbacks()
    {
        var rid = RuntimeInformation.RuntimeIdentifier;
        var os = rid.Split('-')[0];
        return [rid, os, "unix", "any"];
    }

    /// <summary>Creates <paramref name="relative"/> under <paramref name="root"/>, each level 0755.</summary>
    private static void CreateReadableDirectories(string root, string relative)
    {
        var dir = root;
        foreach (var part in relative.Split('/', StringSplitOptions.RemoveEmptyEntries).Prepend(""))
        {
            dir = Path.Combine(dir, part);
            Directory.CreateDirectory(dir);
            File.SetUnixFileMode(dir, Directory755);
        }
    }
}
