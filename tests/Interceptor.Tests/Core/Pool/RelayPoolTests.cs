using Interceptor.Core.Options;
using Interceptor.Core.Pool;
using Interceptor.Tests.TestDoubles;

namespace Interceptor.Tests.Core.Pool;

/// <summary>The rotation order, promotion, down-with-backoff and the return conditions, on a hand-moved clock.</summary>
public class RelayPoolTests
{
    private static readonly string[] Banned = ["550 5.7.606 Access denied, banned sending IP [203.0.113.1]. To request removal from this list please visit https://sender.office.com/"];
    private static readonly HashSet<string> NoneTried = [];
    private static readonly DnsblResult[] Clean = [new("zen.example", DnsblVerdict.NotListed, "NXDOMAIN")];
    private static readonly DnsblResult[] Listed = [new("zen.example", DnsblVerdict.Listed, "127.0.0.2")];
    private static readonly DnsblResult[] Refused = [new("zen.example", DnsblVerdict.ResolverError, "127.255.255.254")];

    // Whose mail drew a relay's reply (Burn.RelayMinUsers, 2 by default: a relay burns on two users' refusals).
    private static readonly BurnSource Alice = new(1001, "");
    private static readonly BurnSource Bob = new(1002, "");

    private readonly ManualClock _clock = new(new DateTimeOffset(2026, 12, 2, 0, 0, 0, TimeSpan.Zero));
    private readonly BurnOptions _burn = new() { Threshold = 2, Window = TimeSpan.FromMinutes(60), ReturnAfter = TimeSpan.FromDays(21), ReturnCleanChecks = 3 };

    private static SmarthostOptions Relay(string name, SmarthostRole role) =>
        new() { Name = name, Host = name + ".example", Role = role, EgressAddress = "203.0.113.1" };

    private static readonly SmarthostOptions[] TwoPrimariesTwoStandbys =
    [
        Relay("p1", SmarthostRole.Primary), Relay("s1", SmarthostRole.Standby), Relay("p2", SmarthostRole.Primary), Relay("s2", SmarthostRole.Standby),
    ];

    private RelayPool Pool(IReadOnlyList<RelayState>? saved = null, SmarthostOptions[]? relays = null) =>
        new(relays ?? TwoPrimariesTwoStandbys, _burn, saved ?? [], _clock);

    private static RelayState State(RelayPool pool, string name) => pool.Snapshot().Single(s => s.Name == name);

    private static List<PoolEventKind> Kinds(PoolUpdate update) => update.Events.Select(e => e.Kind).ToList();

    [Test]
    public void Primaries_are_used_in_order_and_a_standby_never_while_a_primary_is_up()
    {
        var pool = Pool();

        Assert.That(pool.Choose(NoneTried), Is.EqualTo("p1"));
        Assert.That(pool.Choose(new HashSet<string> { "p1" }), Is.EqualTo("p2"));
        Assert.That(pool.Choose(new HashSet<string> { "p1", "p2" }), Is.Null, "both primaries are up: they were tried for this message, the standbys stay unknown");
    }

    [Test]
    public void A_failed_primary_is_down_for_a_doubling_backoff_then_tried_again()
    {
        var pool = Pool();

        var update = pool.ReportFailure("p1", "connection refused");
        Assert.That(Kinds(update), Is.EqualTo(new[] { PoolEventKind.Down }));
        Assert.That(pool.Choose(NoneTried), Is.EqualTo("p2"));
        _clock.Now += TimeSpan.FromSeconds(30);
        Assert.That(pool.Choose(NoneTried), Is.EqualTo("p1"), "30 s after the first failure");

        pool.ReportFailure("p1", "timeout");
        _clock.Now += TimeSpan.FromSeconds(59);
        Assert.That(pool.Choose(NoneTried), Is.EqualTo("p2"), "the second failure doubles the backoff to 60 s");
        _clock.Now += TimeSpan.FromSeconds(1);
        pool.ReportSuccess("p1");
        Assert.That(State(pool, "p1").ConsecutiveFailures, Is.Zero);
        Assert.That(pool.Choose(NoneTried), Is.EqualTo("p1"));
    }

    [Test]
    public void With_every_primary_down_the_first_standby_carries_the_message()
    {
        var pool = Pool();
        pool.ReportFailure("p1", "refused");
        pool.ReportFailure("p2", "refused");

        Assert.That(pool.Choose(new HashSet<string> { "p1", "p2" }), Is.EqualTo("s1"));
        Assert.That(pool.Choose(new HashSet<string> { "p1", "p2", "s1" }), Is.EqualTo("s2"));
        Assert.That(pool.Choose(new HashSet<string> { "p1", "p2", "s1", "s2" }), Is.Null, "nothing left: the caller answers 451 4.4.1");
    }

    [Test]
    public void Burn_replies_up_to_the_threshold_burn_the_primary_and_promote_the_first_never_used_standby_to_the_back()
    {
        var pool = Pool();

        Assert.That(Kinds(pool.RecordReply("p1", ["250 2.0.0 Ok: queued"], Alice)), Is.Empty);
        Assert.That(Kinds(pool.RecordReply("p1", Banned, Alice)), Is.Empty, "one of two");
        var update = pool.RecordReply("p1", Banned, Bob);

        Assert.That(Kinds(update), Is.EqualTo(new[] { PoolEventKind.Burned, PoolEventKind.Promoted }));
        Assert.That(update.Events[1].Relay, Is.EqualTo("s1"));
        Assert.That(update.Changed.Select(s => s.Name), Is.EquivalentTo(new[] { "p1", "s1" }), "a burn and its promotion are persisted together");
        Assert.That(State(pool, "p1").Status, Is.EqualTo(RelayStatus.Burned));
        Assert.That(State(pool, "p1").Evidence, Has.Count.EqualTo(2).And.All.Contains("5.7.606"));
        Assert.That(pool.Choose(NoneTried), Is.EqualTo("p2"));
        Assert.That(pool.Choose(new HashSet<string> { "p2" }), Is.EqualTo("s1"), "the promoted standby sits behind p2");
    }

    [Test]
    public void A_relays_refusals_quoting_addresses_she_chose_never_burn_it_but_its_block_notices_still_do()
    {
        // Her sender and recipients named like block codes; a relay set up as README says refuses them, quoting each.
        var pool = Pool();
        string[] envelope = ["<S3150@evil.example>", "<a@TSS04.evil.example>", "<\"blocked using\"@evil.example>"];
        string[][] echoes =
        [
            ["553 5.7.1 <S3150@evil.example>: Sender address rejected: not owned by user site-alice"],
            ["550 5.1.1 S3150@evil.example: Recipient address rejected: User unknown"],
            ["554 5.7.1 Relay access denied for domain TSS04.evil.example"],
            ["550-5.1.1 <\"blocked using\"@evil.example>:", "550 5.1.1 Recipient address rejected"],
            ["553 5.7.1 <\"5.7.606 S3150\"@other.example>: Sender address rejected"],
        ];

        foreach (var reply in echoes.Concat(echoes))
        {
            Assert.That(Kinds(pool.RecordReply("p1", reply, Alice, envelope)), Is.Empty, string.Join(" / ", reply));
            Assert.That(Kinds(pool.RecordReply("p1", reply, Bob, envelope)), Is.Empty, string.Join(" / ", reply));
        }

        Assert.That(State(pool, "p1").Status, Is.EqualTo(RelayStatus.InRotation));
        string[] plain = ["<alice@site.example>", "<bob@example.net>"];
        pool.RecordReply("p1", Banned, Alice, plain);
        Assert.That(Kinds(pool.RecordReply("p1", Banned, Bob, plain)), Does.Contain(PoolEventKind.Burned), "the relay's own notice names no address of hers");
    }

    [TestCase("<\"a<S3150 b\"@bob.example>", "553 5.7.1 <a<S3150 b@bob.example>: Sender address rejected: not owned by user site-alice")]
    [TestCase("<\"x>\\\" S3150 y\"@bob.example>", "553 5.7.1 <\"x>\\\" S3150 y\"@bob.example>: Sender address rejected: not owned by user site-alice")]
    [TestCase("<\"a<S\\3150 b\"@bob.example>", "553 5.7.1 <a<S3150 b@bob.example>: Sender address rejected: not owned by user site-alice")]
    [TestCase("<x@dbltest.com>", "554 5.7.1 Service unavailable; Sender address [dbltest.com] blocked using dbl.spamhaus.org")]
    public void Her_envelope_written_like_a_block_notice_or_named_in_the_refusal_never_burns_a_relay(string sender, string refusal)
    {
        // A quoted local part holds spaces, brackets and escaped quotes, which a relay may quote back in either form; a
        // relay's rhsbl check refuses her domain with the words of a DNSBL notice. Neither is about the relay's address.
        var pool = Pool();
        string[] envelope = [sender, "<rcpt@example.net>"];

        for (var i = 0; i < 4; i++)
        {
            Assert.That(Kinds(pool.RecordReply("p1", [refusal], i % 2 == 0 ? Alice : Bob, envelope)), Is.Empty);
        }

        Assert.That(Kinds(pool.RecordReply("p1", ["554 5.7.1 Service unavailable; Client host [203.0.113.1] blocked using zen.spamhaus.org"], Alice, ["<a@site.example>"])), Is.Empty);
        Assert.That(Kinds(pool.RecordReply("p1", ["554 5.7.1 Service unavailable; Client host [203.0.113.1] blocked using zen.spamhaus.org"], Bob, ["<b@site.example>"])),
            Does.Contain(PoolEventKind.Burned), "the relay's own address listed burns it");
    }

    [Test]
    public void A_standby_that_stood_in_during_an_outage_is_promoted_after_the_never_used_ones()
    {
        var pool = Pool();
        pool.ReportFailure("p1", "refused");
        pool.ReportFailure("p2", "refused");
        pool.ReportSuccess("s1"); // s1 carried mail: its address is known now

        var update = pool.Burn("p1", "admin");

        Assert.That(update.Events.Single(e => e.Kind == PoolEventKind.Promoted).Relay, Is.EqualTo("s2"));
    }

    [Test]
    public void When_the_reserve_is_empty_the_burn_says_so()
    {
        var pool = Pool();
        pool.Burn("p1", "one");
        pool.Burn("p2", "two");
        pool.Burn("s1", "three");

        Assert.That(Kinds(pool.Burn("s2", "four")), Is.EqualTo(new[] { PoolEventKind.Burned, PoolEventKind.ReserveEmpty }));
        Assert.That(pool.Choose(NoneTried), Is.Null);
    }

    [Test]
    public void A_DNSBL_listing_burns_and_a_resolver_error_does_not()
    {
        var pool = Pool();

        Assert.That(Kinds(pool.RecordDnsbl("p1", Refused)), Is.Empty);
        Assert.That(State(pool, "p1").LastDnsbl, Does.StartWith("resolver error"));
        var update = pool.RecordDnsbl("p1", Listed);

        Assert.That(Kinds(update), Is.EqualTo(new[] { PoolEventKind.Burned, PoolEventKind.Promoted }));
        Assert.That(update.Events[0].Reason, Does.Contain("zen.example 127.0.0.2"));
    }

    [Test]
    public void A_burned_relay_returns_only_after_the_days_and_the_clean_checks_both()
    {
        var pool = Pool();
        pool.Burn("p1", "listed");
        pool.RecordDnsbl("p1", Clean);
        pool.RecordDnsbl("p1", Clean);
        pool.RecordDnsbl("p1", Refused); // neither clean nor a listing: changes nothing
        pool.RecordDnsbl("p1", Clean);
        Assert.That(State(pool, "p1").CleanChecks, Is.EqualTo(3));
        Assert.That(State(pool, "p1").Status, Is.EqualTo(RelayStatus.Burned), "three clean checks but not 21 days");

        _clock.Now += TimeSpan.FromDays(21);
        pool.RecordDnsbl("p1", Listed);
        Assert.That(State(pool, "p1").CleanChecks, Is.Zero, "a listing starts the count again");
        Assert.That(Kinds(pool.ReturnDue()), Is.Empty, "21 days but no clean checks");
        pool.RecordDnsbl("p1", Clean);
        pool.RecordDnsbl("p1", Clean);
        var update = pool.RecordDnsbl("p1", Clean);

        Assert.That(Kinds(update), Is.EqualTo(new[] { PoolEventKind.Returned }));
        Assert.That(State(pool, "p1").Status, Is.EqualTo(RelayStatus.Reserve), "s1 took its place: the rotation is full, p1 waits in reserve");
    }

    [Test]
    public void A_returned_relay_goes_to_the_back_of_a_rotation_shorter_than_the_primaries()
    {
        var relays = new[] { Relay("p1", SmarthostRole.Primary), Relay("p2", SmarthostRole.Primary) };
        var pool = Pool(relays: relays);
        pool.Burn("p1", "first");
        _clock.Now += TimeSpan.FromDays(1);
        pool.Burn("p2", "second");
        Assert.That(pool.Choose(NoneTried), Is.Null);

        _clock.Now += TimeSpan.FromDays(30);
        pool.Restore("p2", "admin");
        Assert.That(State(pool, "p2").Status, Is.EqualTo(RelayStatus.InRotation), "the rotation had room");
        var returned = pool.ReturnDue();
        Assert.That(returned.Events, Is.Empty, "ReturnCleanChecks 3 needs checks: p1 stays out without them");

        var quick = new RelayPool(relays, _burn with { ReturnCleanChecks = 0 }, pool.Snapshot(), _clock);
        Assert.That(quick.ReturnDue().Events.Single().Relay, Is.EqualTo("p1"));
        Assert.That(quick.Choose(NoneTried), Is.EqualTo("p2"), "p1 returned behind p2");
        Assert.That(quick.Choose(new HashSet<string> { "p2" }), Is.EqualTo("p1"));
    }

    [Test]
    public void Once_the_standbys_are_spent_the_least_recently_burned_returned_relay_is_promoted()
    {
        var relays = new[] { Relay("p1", SmarthostRole.Primary), Relay("s1", SmarthostRole.Standby), Relay("s2", SmarthostRole.Standby) };
        var pool = new RelayPool(relays, _burn with { ReturnCleanChecks = 0 }, [], _clock);
        pool.Burn("p1", "day 0");
        _clock.Now += TimeSpan.FromDays(1);
        pool.Burn("s1", "day 1");
        _clock.Now += TimeSpan.FromDays(30);
        Assert.That(pool.ReturnDue().Events.Select(e => e.Relay), Is.EquivalentTo(new[] { "p1", "s1" }));
        Assert.That(State(pool, "p1").Status, Is.EqualTo(RelayStatus.Reserve), "s2 fills the rotation of one");

        var update = pool.Burn("s2", "day 31");

        Assert.That(update.Events.Single(e => e.Kind == PoolEventKind.Promoted).Relay, Is.EqualTo("p1"), "burned on day 0, before s1");
    }

    [Test]
    public void A_restart_from_the_saved_states_keeps_burned_relays_out()
    {
        var pool = Pool();
        var update = pool.Burn("p1", "admin: listed at Microsoft");

        var restarted = Pool(saved: update.Changed);

        Assert.That(State(restarted, "p1").Status, Is.EqualTo(RelayStatus.Burned));
        Assert.That(State(restarted, "p1").Reason, Is.EqualTo("admin: listed at Microsoft"));
        Assert.That(restarted.Choose(NoneTried), Is.EqualTo("p2"));
        Assert.That(restarted.Choose(new HashSet<string> { "p2" }), Is.EqualTo("s1"));
    }

    [Test]
    public void The_host_burns_by_replies_and_an_admin_restores_it()
    {
        var pool = Pool();
        Assert.That(pool.HostBurned, Is.False);

        // Two networks, each refusing two users' mail.
        pool.RecordReply(RelayPool.HostKey, Banned, new BurnSource(1001, "192.0.2.0/24"));
        pool.RecordReply(RelayPool.HostKey, Banned, new BurnSource(1002, "192.0.2.0/24"));
        pool.RecordReply(RelayPool.HostKey, Banned, new BurnSource(1001, "198.51.100.0/24"));
        Assert.That(pool.HostBurned, Is.False, "one user's mail refused by the second network");
        var update = pool.RecordReply(RelayPool.HostKey, Banned, new BurnSource(1002, "198.51.100.0/24"));

        Assert.That(Kinds(update), Is.EqualTo(new[] { PoolEventKind.Burned }), "the host is no relay: nothing is promoted");
        Assert.That(pool.HostBurned, Is.True);
        Assert.That(pool.Choose(NoneTried), Is.EqualTo("p1"));
        pool.Restore(RelayPool.HostKey, "admin");
        Assert.That(pool.HostBurned, Is.False);
    }

    [Test]
    public void One_users_replies_or_one_networks_never_burn_the_host_however_many()
    {
        // Burn.HostMinUsers and HostMinNetworks (2 each): a site's own MX must not move every user's mail to the pool,
        // not even with other users' mail sent to that site's domain.
        var pool = Pool();
        var herMx = "203.0.113.0/24";

        for (var i = 0; i < 10; i++)
        {
            Assert.That(Kinds(pool.RecordReply(RelayPool.HostKey, Banned, new BurnSource(1001, herMx))), Is.Empty);
        }

        Assert.That(Kinds(pool.RecordReply(RelayPool.HostKey, Banned, new BurnSource(1002, herMx))), Is.Empty, "a second user, the same network");
        Assert.That(pool.HostBurned, Is.False);
        Assert.That(pool.Snapshot().Single(s => s.Name == RelayPool.HostKey).Evidence, Has.Some.Contains("5.7.606"), "still kept as evidence");
        Assert.That(Kinds(pool.RecordReply(RelayPool.HostKey, Banned, new BurnSource(1001, "2001:db8::/48"))), Is.Empty,
            "her MX's IPv6 network refusing her own mail: two users and two networks, but the second network refused only hers");
        Assert.That(Kinds(pool.RecordReply(RelayPool.HostKey, Banned, new BurnSource(1002, "198.51.100.0/24"))), Is.Empty,
            "bob's mail refused by a third network, alone there");
        Assert.That(Kinds(pool.RecordReply(RelayPool.HostKey, Banned, new BurnSource(1003, "198.51.100.0/24"))), Is.EqualTo(new[] { PoolEventKind.Burned }),
            "a second network refusing two users' mail confirms it");
    }

    [Test]
    public void One_users_replies_never_burn_a_relay_however_many_and_a_second_users_confirm_them()
    {
        // Burn.RelayMinUsers (2): she chooses what a relay quotes back to her (her login's name, her own MX's answers to
        // the relay's recipient verification). Networks play no part: the relay is the one answering.
        var pool = Pool();

        for (var i = 0; i < 10; i++)
        {
            Assert.That(Kinds(pool.RecordReply("p1", Banned, new BurnSource(1001, i % 2 == 0 ? "203.0.113.0/24" : "2001:db8::/48"))), Is.Empty);
        }

        Assert.That(State(pool, "p1").Status, Is.EqualTo(RelayStatus.InRotation));
        Assert.That(State(pool, "p1").Evidence, Has.Some.Contains("5.7.606"), "still kept as evidence");
        Assert.That(Kinds(pool.RecordReply("p1", Banned, new BurnSource(1002, "203.0.113.0/24"))), Does.Contain(PoolEventKind.Burned));
    }

    [Test]
    public void Each_user_counts_no_more_than_her_share_so_one_neighbours_refusal_after_hers_does_not_burn_a_relay()
    {
        // Threshold 5 and two users: alice's ten refusals count as three (5 / 2, rounded up), so one refusal drawn by a
        // neighbour's mail (her contact form, her MX answering the relay's recipient verification) is not enough.
        var pool = new RelayPool(TwoPrimariesTwoStandbys, _burn with { Threshold = 5 }, [], _clock);

        for (var i = 0; i < 10; i++)
        {
            Assert.That(Kinds(pool.RecordReply("p1", Banned, Alice)), Is.Empty);
        }

        Assert.That(Kinds(pool.RecordReply("p1", Banned, Bob)), Is.Empty, "three of hers and one of his");
        Assert.That(Kinds(pool.RecordReply("p1", Banned, Bob)), Does.Contain(PoolEventKind.Burned), "three and two");
    }

    [Test]
    public void With_one_user_enough_a_relay_burns_on_her_replies_alone()
    {
        var pool = new RelayPool(TwoPrimariesTwoStandbys, _burn with { RelayMinUsers = 1 }, [], _clock);

        pool.RecordReply("p1", Banned, Alice);

        Assert.That(Kinds(pool.RecordReply("p1", Banned, Alice)), Does.Contain(PoolEventKind.Burned));
    }

    [Test]
    public void An_unknown_relay_is_named_in_the_error()
    {
        var pool = Pool();

        Assert.That(() => pool.Burn("nosuch", "x"), Throws.ArgumentException.With.Message.Contains("\"nosuch\""));
    }
}
