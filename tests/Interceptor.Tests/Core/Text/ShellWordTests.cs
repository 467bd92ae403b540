using System.Diagnostics;
using Interceptor.Core.Text;

namespace Interceptor.Tests.Core.Text;

public class ShellWordTests
{
    [TestCase("/etc/smtp-interceptor/relay-logins")]
    [TestCase("smtp-interceptor")]
    [TestCase("/srv/a_b/c.d+e,f:g@h%i=j")]
    public void A_plain_word_is_left_as_it_is(string word)
    {
        Assert.That(ShellWord.Quote(word), Is.EqualTo(word));
    }

    // The shell itself reads the quoted word back: printf gets exactly one argument, the word, and runs nothing. RAN
    // stands for a file the word would create if the shell ran what it hides.
    [TestCase("/etc/my relay/logins")]
    [TestCase("/tmp/x;touch RAN")]
    [TestCase("/tmp/$(touch RAN)")]
    [TestCase("/tmp/`touch RAN`")]
    [TestCase("/tmp/it's")]
    [TestCase("/tmp/''")]
    [TestCase("/tmp/a\\b\"c*d?e[f]~g!h&i|j<k>l#m{n}o")]
    [TestCase("/tmp/tab\there")]
    [TestCase("/tmp/line\nbreak")]
    [TestCase("")]
    public void The_shell_reads_a_quoted_word_back_as_one_argument_and_runs_nothing(string pattern)
    {
        var directory = Directory.CreateTempSubdirectory("shellword-");
        var marker = Path.Combine(directory.FullName, "ran");
        var word = pattern.Replace("RAN", marker, StringComparison.Ordinal);
        var start = new ProcessStartInfo("/bin/sh") { RedirectStandardOutput = true };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add($"printf '%s|' {ShellWord.Quote(word)}");
        using var shell = Process.Start(start)!;
        var output = shell.StandardOutput.ReadToEnd();
        shell.WaitForExit();

        var ran = File.Exists(marker);
        directory.Delete(recursive: true);

        Assert.That(output, Is.EqualTo(word + "|"));
        Assert.That(ran, Is.False, "the shell ran a command hidden in the word");
    }
}
