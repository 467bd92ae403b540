using System.Runtime.CompilerServices;

namespace Interceptor.Tests.Netfilter;

/// <summary>
/// Finds the golden files and nft JSON samples. They are read from the build output when the test
/// project copies them there, and from the source tree otherwise, so the tests work either way.
/// Setting UPDATE_GOLDEN=1 makes golden tests rewrite the files in the source tree instead of comparing.
/// </summary>
internal static class NetfilterTestData
{
    public static bool UpdateGolden => Environment.GetEnvironmentVariable("UPDATE_GOLDEN") == "1";

    /// <summary>The repository root: the nearest directory above the test binaries holding Interceptor.sln.</summary>
    public static string RepositoryRoot { get; } = FindRepositoryRoot();

    /// <summary>tests/Interceptor.Tests/Netfilter in the source tree.</summary>
    public static string SourceDirectory => Path.Combine(RepositoryRoot, "tests", "Interceptor.Tests", "Netfilter");

    public static string Read(string relativePath)
    {
        var copied = Path.Combine(AppContext.BaseDirectory, "Netfilter", relativePath);
        return File.ReadAllText(File.Exists(copied) ? copied : Path.Combine(SourceDirectory, relativePath));
    }

    private static string FindRepositoryRoot([CallerFilePath] string thisFile = "")
    {
        foreach (var start in new[] { AppContext.BaseDirectory, Path.GetDirectoryName(thisFile) ?? string.Empty })
        {
            for (var directory = new DirectoryInfo(start); directory is not null; directory = directory.Parent)
            {
                if (File.Exists(Path.Combine(directory.FullName, "Interceptor.sln")))
                {
                    return directory.FullName;
                }
            }
        }

        throw new InvalidOperationException("Interceptor.sln not found above the test binaries or sources.");
    }
}
