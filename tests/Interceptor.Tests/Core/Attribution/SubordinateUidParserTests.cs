using Interceptor.Core.Attribution;
using NUnit.Framework;

namespace Interceptor.Tests.Core.Attribution;

public class SubordinateUidParserTests
{
    [Test]
    public void Valid_lines_by_name_and_by_number_are_read_with_their_line_numbers()
    {
        var parsed = SubordinateUidParser.Parse("alice:100000:65536\n\n# a comment\n1002:165536:65536\r\n");
        Assert.Multiple(() =>
        {
            Assert.That(parsed.Problems, Is.Empty);
            Assert.That(parsed.Lines, Has.Count.EqualTo(2));
            Assert.That(parsed.Lines[0], Is.EqualTo(new SubordinateUidLine(1, "alice", new UidRange(100000, 165535))));
            Assert.That(parsed.Lines[1], Is.EqualTo(new SubordinateUidLine(4, "1002", new UidRange(165536, 231071))));
        });
    }

    [TestCase("alice:100000", "line 1: expected owner:start:count, found 2 field(s)")]
    [TestCase("alice:100000:65536:x", "line 1: expected owner:start:count, found 4 field(s)")]
    [TestCase(":100000:65536", "line 1: \"\" is not a user name or uid")]
    [TestCase("al ice:100000:65536", "line 1: \"al ice\" is not a user name or uid")]
    [TestCase("alice:-1:65536", "line 1: start \"-1\" is not a uid")]
    [TestCase("alice:1e5:65536", "line 1: start \"1e5\" is not a uid")]
    [TestCase("alice:100000:0", "line 1: count \"0\" is not a positive number")]
    [TestCase("alice:100000:many", "line 1: count \"many\" is not a positive number")]
    [TestCase("alice:4294967290:10", "line 1: range 4294967290+10 goes beyond the highest uid 4294967294")]
    public void A_malformed_line_is_skipped_and_named_by_its_number(string line, string problem)
    {
        var parsed = SubordinateUidParser.Parse(line);
        Assert.Multiple(() =>
        {
            Assert.That(parsed.Lines, Is.Empty);
            Assert.That(parsed.Problems.Single(), Does.StartWith(problem));
        });
    }

    [Test]
    public void The_good_lines_around_a_bad_one_still_count()
    {
        var parsed = SubordinateUidParser.Parse("alice:100000:65536\ngarbage\nbob:165536:65536\n");
        Assert.Multiple(() =>
        {
            Assert.That(parsed.Lines.Select(l => l.Owner), Is.EqualTo(new[] { "alice", "bob" }));
            Assert.That(parsed.Problems.Single(), Does.StartWith("line 2:"));
        });
    }

    [Test]
    public void The_highest_valid_uid_can_be_the_last_of_a_range()
    {
        var parsed = SubordinateUidParser.Parse("alice:4294967285:10");
        Assert.That(parsed.Lines.Single().Range, Is.EqualTo(new UidRange(4294967285, UidRange.MaxUid)));
    }
}
