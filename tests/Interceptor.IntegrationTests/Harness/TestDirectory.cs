namespace Interceptor.IntegrationTests;

/// <summary>
/// A per-test temporary directory, readable by the unprivileged client users, holding the config,
/// the fixture scripts, the messages to send and what the fake MX recorded. Removed on dispose.
/// </summary>
public sealed class TestDirectory : IDisposable
{
    private const UnixFileMode WorldReadable =
        UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute |
        UnixFileMode.GroupRead | UnixFileMode.GroupExecute |
        UnixFileMode.OtherRead | UnixFileMode.OtherExecute;

    private string? _daemonCopy;

    public TestDirectory()
    {
        Path = Directory.CreateTempSubdirectory("smtpi-test-").FullName;
        // CreateTempSubdirectory makes it 0700; the clients run as other users and must read scripts and messages.
        File.SetUnixFileMode(Path, WorldReadable);
        foreach (var script in Directory.GetFiles(FixturesDirectory, "*.py"))
        {
            var target = System.IO.Path.Combine(Path, System.IO.Path.GetFileName(script));
            File.Copy(script, target);
            File.SetUnixFileMode(target, WorldReadable);
        }
    }

    public string Path { get; }

    /// <summary>Where the build copied Fixtures/*.py, next to the test assembly.</summary>
    public static string FixturesDirectory => System.IO.Path.Combine(AppContext.BaseDirectory, "Fixtures");

    public string PathOf(string name) => System.IO.Path.Combine(Path, name);

    /// <summary>
    /// smtp-interceptor.dll for running the CLI or daemon as a user other than root: a copy in this directory
    /// (made on first use), since the build output in the checkout may not be reachable by that user.
    /// </summary>
    public string DaemonAssemblyForOtherUsers => _daemonCopy ??= ReadableDaemonCopy.CopyInto(PathOf("daemon-bin"));

    /// <summary>A subdirectory; <paramref name="worldWritable"/> for smtp-sink, which writes as nobody.</summary>
    public string Subdirectory(string name, bool worldWritable = false)
    {
        var path = System.IO.Path.Combine(Path, name);
        Directory.CreateDirectory(path);
        File.SetUnixFileMode(path, worldWritable ? WorldReadable | UnixFileMode.GroupWrite | UnixFileMode.OtherWrite : WorldReadable);
        return path;
    }

    /// <summary>Writes bytes readable by every user (the clients read their message files).</summary>
    public string Write(string name, byte[] content)
    {
        var path = PathOf(name);
        File.WriteAllBytes(path, content);
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        return path;
    }

    public string Write(string name, string content) => Write(name, System.Text.Encoding.UTF8.GetBytes(content));

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
            // A process that outlived its namespace may still hold a file; /tmp is cleaned eventually.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
