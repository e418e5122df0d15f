fn main() {
    std::process::exit(sanctuary::run());
}
