// Every file here is a test or test harness; NUnit is everywhere.
global using NUnit.Framework;
