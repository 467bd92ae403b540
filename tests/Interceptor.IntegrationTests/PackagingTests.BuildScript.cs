namespace Interceptor.IntegrationTests;

/// <summary>
/// build-deb's scratch directory lies under the tree's artifacts/, where MSBuild and NuGet look for files that join the
/// publish: a directory someone else made, or may write, is refused before anything is copied or built.
/// </summary>
public sealed partial class PackagingTests
{
    [TestCase("nobody", "755", TestName = "{m}(another user's)")]
    [TestCase("root", "777", TestName = "{m}(root's, writable by others)")]
    [TestCase("root", "775", TestName = "{m}(root's, writable by its group)")]
    public async Task Build_deb_refuses_an_artifacts_directory_others_could_plant_files_in(string owner, string mode)
    {
        // A tree of the script and the version's file alone: the refusal comes before the sources are needed.
        var tree = Directory.CreateTempSubdirectory("smtpi-build-deb-").FullName;
        try
        {
            Directory.CreateDirectory(Path.Combine(tree, "packaging"));
            File.Copy(Path.Combine(RepositoryRoot, "packaging", "build-deb"), Path.Combine(tree, "packaging", "build-deb"));
            File.Copy(Path.Combine(RepositoryRoot, "Directory.Build.props"), Path.Combine(tree, "Directory.Build.props"));
            var artifacts = Directory.CreateDirectory(Path.Combine(tree, "artifacts")).FullName;
            await ProcessRunner.RunCheckedAsync("chown", owner, artifacts);
            await ProcessRunner.RunCheckedAsync("chmod", mode, artifacts);

            var run = await ProcessRunner.RunAsync(Path.Combine(tree, "packaging", "build-deb"), [], TimeSpan.FromMinutes(5));

            var uid = owner == "root" ? "0" : "65534";
            Assert.That(run.ExitCode, Is.EqualTo(1), run.Describe());
            Assert.That(run.Stderr, Does.Contain(
                $"build-deb: {artifacts} belongs to uid {uid} with mode {mode}: it must be yours (uid 0) and not writable by group or others, as files planted in it would join the build; remove it (with what is in it) and run again"),
                run.Describe());
            Assert.That(Directory.EnumerateFileSystemEntries(artifacts), Is.Empty, "no scratch directory made in it");
            await ProcessRunner.RunCheckedAsync("chown", "root", artifacts);
            await ProcessRunner.RunCheckedAsync("chmod", "755", artifacts);
            var accepted = await ProcessRunner.RunAsync(Path.Combine(tree, "packaging", "build-deb"), [], TimeSpan.FromMinutes(5));
            Assert.That(accepted.Stderr, Does.Not.Contain("belongs to uid"), "root's 0755 passes (the copy of the missing sources fails after it)\n" + accepted.Describe());
        }
        finally
        {
            Directory.Delete(tree, recursive: true);
        }
    }
}
