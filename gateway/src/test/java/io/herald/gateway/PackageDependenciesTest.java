package io.herald.gateway;

import com.tngtech.archunit.core.importer.ImportOption;
import com.tngtech.archunit.junit.AnalyzeClasses;
import com.tngtech.archunit.junit.ArchTest;
import com.tngtech.archunit.lang.ArchRule;

import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.noClasses;
import static com.tngtech.archunit.library.dependencies.SlicesRuleDefinition.slices;

/**
 * The package structure of the main code, checked on every build (see docs/architecture.md §1):
 * the packages form a DAG, top (the root package, which assembles a node) to bottom. A dependency
 * that would close a cycle fails {@code mvn verify} here, naming the classes on each edge.
 */
@AnalyzeClasses(packages = {"io.herald.gateway", "io.herald.protocol"},
        importOptions = ImportOption.DoNotIncludeTests.class)
class PackageDependenciesTest {

    /** The stage packages, each with its subpackages (connector with apns, fcm and sms), form no cycle. */
    @ArchTest
    static final ArchRule stagesAreFreeOfCycles =
            slices().matching("io.herald.gateway.(*)..").should().beFreeOfCycles();

    /**
     * Nor do single packages: within connector, the SPI ({@code connector}) does not depend on its
     * implementations ({@code connector.apns}, {@code .fcm}, {@code .sms}), nor one on another.
     */
    @ArchTest
    static final ArchRule packagesAreFreeOfCycles =
            slices().matching("io.herald.gateway.(**)").should().beFreeOfCycles();

    /** The root package (Herald, HeraldMain) assembles everything; nothing depends on it. */
    @ArchTest
    static final ArchRule nothingDependsOnTheAssembly = noClasses()
            .that().resideOutsideOfPackage("io.herald.gateway")
            .should().dependOnClassesThat().resideInAPackage("io.herald.gateway");

    /** The protocol module is one package today; should it grow subpackages, they form no cycle either. */
    @ArchTest
    static final ArchRule protocolIsFreeOfCycles =
            slices().matching("io.herald.protocol.(**)").should().beFreeOfCycles().allowEmptyShould(true);
}
