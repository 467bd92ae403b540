using System.Diagnostics;

namespace Interceptor.IntegrationTests;

/// <summary>
/// The .deb built by packaging/build-deb, once per test run and shared by every fixture that needs it (the
/// build takes minutes). SMTPI_TEST_DEB=path/to.deb uses that file instead. The built package's directory is
/// deleted when the test process exits.
/// </summary>
public static class PackageBuild
{
    private static readonly Lazy<Task<(string Deb, TimeSpan Took, string Output)>> Build = new(BuildAsync);

    public static bool Prebuilt => Environment.GetEnvironmentVariable("SMTPI_TEST_DEB") is { Length: > 0 };

    /// <summary>The source tree: the test assembly lives in tests/Interceptor.IntegrationTests/bin/CONFIG/TFM.</summary>
    public static string RepositoryRoot
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "packaging", "build-deb")) && File.Exists(Path.Combine(dir.FullName, "Directory.Build.props")))
                {
                    return dir.FullName;
                }
            }

            throw new InvalidOperationException($"no packaging/build-deb above {AppContext.BaseDirectory}");
        }
    }

    /// <summary>The package's path; the first caller builds it (and prints build-deb's output and duration).</summary>
    public static async Task<string> GetAsync()
    {
        var (deb, took, output) = await Build.Value;
        if (!Prebuilt)
        {
            await TestContext.Progress.WriteLineAsync($"package: {deb} (build-deb took {took.TotalSeconds:F0} s)");
        }

        Assert.That(File.Exists(deb), Is.True, $"no package at {deb}:\n{output}");
        return deb;
    }

    private static async Task<(string, TimeSpan, string)> BuildAsync()
    {
        if (Environment.GetEnvironmentVariable("SMTPI_TEST_DEB") is { Length: > 0 } prebuilt)
        {
            await TestContext.Progress.WriteLineAsync($"package: using SMTPI_TEST_DEB={prebuilt}");
            return (prebuilt, TimeSpan.Zero, "");
        }

        var output = Directory.CreateTempSubdirectory("smtpi-deb-out-").FullName;
        AppDomain.CurrentDomain.ProcessExit += (_, _) => Directory.Delete(output, recursive: true);
        var watch = Stopwatch.StartNew();
        var build = await ProcessRunner.RunAsync(Path.Combine(RepositoryRoot, "packaging", "build-deb"), ["--output", output], TimeSpan.FromMinutes(25));
        await TestContext.Progress.WriteLineAsync($"build-deb took {watch.Elapsed.TotalSeconds:F0} s\n{build.Stdout}");
        if (!build.Succeeded)
        {
            throw new InvalidOperationException("packaging/build-deb failed:\n" + build.Describe());
        }

        return (build.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Last(), watch.Elapsed, build.Describe());
    }
}
